# Builds internal/labels/testdata/truth.tsv from the per-group review decisions below
# (see docs/LABELS.md, "How truth.tsv was built and checked"). Usage: python3 truth_review.py
import json,glob,base64,re,collections,os
# Run from anywhere: paths are relative to this file (internal/labels/testdata).
HERE=os.path.dirname(os.path.abspath(__file__))
PKG=os.path.dirname(HERE)
DATA=os.path.normpath(os.path.join(PKG,'..','..','..','shared','data','synthea'))
VS={}
for f in glob.glob(os.path.join(PKG,'valuesets','*.tsv')):
    cat=None
    for line in open(f):
        p=line.rstrip('\n').split('\t')
        if p[0]=='@category': cat=p[1]
        elif p[0].startswith('http'): VS.setdefault((p[0],p[1]),set()).add(cat)
# Review decisions that differ from "code in value set":
SDV_POSITIVE=re.compile(r'^(?!No signs)',re.I)         # Abuse Status [OMAHA]: only a positive finding is SDV
CIEL_HIV=re.compile(r'\bhiv\b|antiretroviral|efavirenz|tenofovir|emtricitabine|lamivudine|zidovudine|nevirapine|abacavir|didanosine|stavudine|lopinavir',re.I)
CIEL_SEX=re.compile(r'vdrl|rapid plasma reagin|treponema|pregnancy',re.I)
def ccs(r):
    rt=r['resourceType']; out=[]
    def add(cc):
        if cc: out.extend(cc.get('coding',[]))
    if rt in('Patient','Organization','Practitioner','Provenance','Immunization','Goal','CareTeam','ImagingStudy','Device','SupplyDelivery'): return out
    add(r.get('code')); add(r.get('valueCodeableConcept')); add(r.get('medicationCodeableConcept'))
    for x in r.get('reasonCode',[]): add(x)
    for x in r.get('component',[]): add(x.get('code')); add(x.get('valueCodeableConcept'))
    if rt=='Encounter':
        for x in r.get('type',[]): add(x)
    if rt=='DocumentReference': add(r.get('type'))
    if rt=='CarePlan':
        for x in r.get('category',[]): add(x)
        for a in r.get('activity',[]): add(a.get('detail',{}).get('code'))
    if rt in('Claim','ExplanationOfBenefit'):
        for i in r.get('item',[]): add(i.get('productOrService'))
    for c in r.get('contained',[]): out.extend(ccs(c))
    return out
rows=[]; direct={}; basis={}
files=[f for f in sorted(glob.glob(os.path.join(DATA,'*','*.json'))) if '/support/' not in f]
PATHS={'Encounter':[['reasonReference']],'Claim':[['diagnosis','diagnosisReference'],['prescription']],
 'ExplanationOfBenefit':[['diagnosis','diagnosisReference'],['claim']],'DiagnosticReport':[['result']],
 'CarePlan':[['addresses'],['activity','detail','reasonReference']],'MedicationRequest':[['reasonReference']],
 'Procedure':[['reasonReference']],'Observation':[['hasMember'],['derivedFrom']],'DocumentReference':[['context','related']]}
def refs(r,path):
    cur=[r]
    for e in path:
        nxt=[]
        for o in cur:
            v=o.get(e) if isinstance(o,dict) else None
            if isinstance(v,list): nxt+=v
            elif v is not None: nxt.append(v)
        cur=nxt
    return [o['reference'] for o in cur if isinstance(o,dict) and 'reference' in o]
for f in files:
    ents=json.load(open(f))['entry']
    lab={}; info={}
    for e in ents:
        r=e['resource']; rt=r['resourceType']; cats=set(); why=set()
        for c in ccs(r):
            s=c.get('system',''); code=c.get('code',''); d=c.get('display','')
            k=VS.get((s,code),set())
            if code=='28245-9': k=set()  # decided below from the value
            if k: cats|=k; why.add('code')
            elif 'AAAA' in code:  # OpenMRS/CIEL id under a standard system: judged from the display
                if CIEL_HIV.search(d): cats.add('HIV'); why.add('code')
                if CIEL_SEX.search(d): cats.add('SEX'); why.add('code')
        if rt=='Observation' and r['code']['coding'][0].get('code')=='28245-9' and SDV_POSITIVE.search(r.get('valueString','No signs')):
            cats.add('SDV'); why.add('code')
        nar=set()
        for a in [x.get('attachment',{}) for x in r.get('content',[])]+r.get('presentedForm',[]):
            if 'data' in a:
                t=base64.b64decode(a['data']).decode('utf8','replace')
                if re.search(r'\bis an alcoholic\b',t): nar.add('ETH')
                if re.search(r'identifies as (hetero|homo|bi)sexual',t): nar.add('SEX')
        lab[e['fullUrl']]=set(cats)
        info[e['fullUrl']]=(rt,r['id'],cats,nar-cats,r)
    # propagation, to a fixed point
    for _ in range(4):
        for u,(rt,id_,cats,nar,r) in info.items():
            for p in PATHS.get(rt,[]):
                for ref in refs(r,p):
                    if ref in lab and not lab[ref] <= lab[u]:
                        lab[u] |= lab[ref]
    for u,(rt,id_,cats,nar,r) in info.items():
        prop=lab[u]-cats
        for c in sorted(cats): rows.append((rt,id_,c,'code'))
        for c in sorted(prop): rows.append((rt,id_,c,'propagated'))
        for c in sorted(nar-prop): rows.append((rt,id_,c,'narrative'))
print(len(rows)); print(collections.Counter((r[2],r[3]) for r in rows))
near=[]
NEAR_CODES={'226138001':'alcohol-free diet in a head-injury rehabilitation plan: not ETH',
 '243077000':'recommendation to limit sexual activity after surgery: not SEX',
 '171207006':'routine depression screening: not PSY','715252007':'routine PHQ-9 screening: not PSY',
 '385892002':'routine mental health screening: not PSY',
 '1049221':'opioid analgesic prescription: not ETH','1860154':'opioid analgesic prescription: not ETH',
 '857005':'opioid analgesic prescription: not ETH','861467':'opioid analgesic prescription: not ETH','1310197':'opioid analgesic: not ETH','856980':'opioid analgesic: not ETH',
 '198031':'nicotine patch: tobacco is not ETH (C2S excludes tobacco)','710081004':'smoking cessation: not ETH',
 '752899':'leuprolide for prostate cancer: not SEX','657AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA':'CD4 panel ordered: not HIV-specific'}
labelled={(r[0],r[1]) for r in rows}
for f in files:
    for e in json.load(open(f))['entry']:
        r=e['resource']; rt=r['resourceType']; k=(rt,r['id'])
        if k in labelled: continue
        s=json.dumps(r)
        note=None
        if 'MENTAL HEALTH CENTER' in s.upper(): note='care plan at a "MENTAL HEALTH CENTER" location (food allergy/asthma): not PSY'
        elif rt=='Observation' and '28245-9' in s: note='Abuse Status [OMAHA] = "No signs/symptoms": not SDV (the labeller over-labels it)'
        else:
            for c in ccs(r):
                if c.get('code') in NEAR_CODES: note=NEAR_CODES[c['code']]; break
        if note: near.append((rt,r['id'],'-','near-miss',note))
print(len(near), collections.Counter(n[4] for n in near))
with open(os.path.join(HERE,'truth.tsv'),'w') as out:
    out.write('# Hand-checked sensitivity categories of the 98 shared Synthea patients (../shared/data/synthea).\n')
    out.write('# One line per resource and category; category "-" marks a checked near-miss (expected: no label).\n')
    out.write('# basis: code (coded clinical content), propagated (inherits via a default PropagateVia path),\n')
    out.write('#        narrative (only the base64 note text says it), near-miss. See docs/LABELS.md for how it was checked.\n')
    out.write('type\tid\tcategory\tbasis\tnote\n')
    for r in sorted(set(rows)): out.write('\t'.join(r)+'\t\n')
    for n in sorted(set(near)): out.write('\t'.join(n)+'\n')
