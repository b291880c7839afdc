package smart

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// UnknownDescription is what [Describe] says of a scope Warden does not
// understand, which [Grant] can never grant.
const UnknownDescription = "An unrecognised permission; it will not be granted"

// otherDescriptions describe the non-resource scopes (SMART 2.2 "Scopes
// for requesting context data", "identity data" and "a refresh token").
var otherDescriptions = map[string]string{
	"openid":           "Confirm your identity to the app when you sign in",
	"fhirUser":         "Tell the app which record represents you (your patient or clinician record)",
	"profile":          "Share your name and basic profile details with the app",
	"launch":           "Learn what you were working on when the app was opened, such as the current patient or visit",
	"launch/patient":   "Know which patient is selected when the app starts",
	"launch/encounter": "Know which visit (encounter) is selected when the app starts",
	"offline_access":   "Keep access when you are not using the app, until you revoke it",
	"online_access":    "Keep access while you are signed in, ending when you sign out",
}

// typeNouns name the records of common resource types for people, in the
// plural; other types fall back to their name split into words.
var typeNouns = map[string]string{
	"AllergyIntolerance":         "allergies and intolerances",
	"Appointment":                "appointments",
	"CarePlan":                   "care plans",
	"CareTeam":                   "care teams",
	"Claim":                      "insurance claims",
	"Condition":                  "conditions (such as diagnoses and health problems)",
	"Consent":                    "consent and privacy choices",
	"Coverage":                   "insurance coverage",
	"Device":                     "medical devices",
	"DiagnosticReport":           "diagnostic reports (such as lab and imaging reports)",
	"DocumentReference":          "clinical documents (such as notes and letters)",
	"Encounter":                  "visits and encounters",
	"ExplanationOfBenefit":       "insurance claim explanations",
	"FamilyMemberHistory":        "family health history",
	"Goal":                       "care goals",
	"ImagingStudy":               "imaging studies (such as X-rays and scans)",
	"Immunization":               "immunizations (vaccinations)",
	"Location":                   "care locations",
	"Medication":                 "medications",
	"MedicationAdministration":   "medications given",
	"MedicationDispense":         "medications dispensed by pharmacies",
	"MedicationRequest":          "medication prescriptions and orders",
	"MedicationStatement":        "medications taken",
	"Observation":                "observations (such as vital signs and lab results)",
	"Organization":               "organizations (such as clinics and insurers)",
	"Patient":                    "demographic details (such as name, birth date and contact details)",
	"Practitioner":               "clinician details",
	"PractitionerRole":           "clinician roles",
	"Procedure":                  "procedures (such as surgeries)",
	"Provenance":                 "record provenance (who changed records and when)",
	"QuestionnaireResponse":      "questionnaire answers",
	"RelatedPerson":              "related people (such as family members and carers)",
	"Schedule":                   "appointment schedules",
	"ServiceRequest":             "orders and referrals",
	"Slot":                       "appointment slots",
	"Specimen":                   "specimens (such as blood samples)",
	"Account":                    "billing accounts",
	"AuditEvent":                 "access logs (audit events)",
	"Binary":                     "attached files",
	"Composition":                "clinical documents (compositions)",
	"Flag":                       "alerts and flags",
	"Group":                      "groups of patients",
	"HealthcareService":          "healthcare services",
	"Invoice":                    "invoices",
	"List":                       "lists (such as medication and problem lists)",
	"Media":                      "images and media",
	"Task":                       "tasks",
	"AdverseEvent":               "adverse events",
	"DeviceRequest":              "medical device orders",
	"NutritionOrder":             "nutrition orders",
	"RiskAssessment":             "risk assessments",
	"ClinicalImpression":         "clinical assessments",
	"DetectedIssue":              "detected clinical issues",
	"Communication":              "messages",
	"CommunicationRequest":       "message requests",
	"Questionnaire":              "questionnaires",
	"EpisodeOfCare":              "episodes of care",
	"MolecularSequence":          "genetic sequence data",
	"BodyStructure":              "body structures",
	"VisionPrescription":         "vision prescriptions",
	"ImmunizationRecommendation": "immunization recommendations",
}

// sensitiveNames name the default sealed categories (HL7 v3 ActCode).
var sensitiveNames = map[string]string{
	"HIV": "HIV/AIDS", "PSY": "mental health", "ETH": "substance use treatment", "SEX": "sexual and reproductive health",
	"GDIS": "genetic conditions", "SDV": "sexual assault, abuse or domestic violence",
}

// Describe returns one plain-language sentence, without a final period,
// saying what a single scope lets the app do, for the approval page:
// patient/Observation.rs gives "Read and search the patient's observations
// (such as vital signs and lab results)". A granular scope's query is
// described too ("…, only those in the "laboratory" category"), with its
// values quoted and shortened so a client cannot make the sentence say
// something else. An unknown or malformed scope, or a string holding more
// than one scope, gives [UnknownDescription].
func Describe(scope string) string {
	if d, ok := otherDescriptions[scope]; ok {
		return d
	}
	if sensitiveScope(scope) {
		cat := strings.TrimPrefix(scope, SensitivePrefix)
		if cat == "*" {
			return "Open records in every specially protected category (HIV, mental health, substance use treatment, sexual and reproductive health, genetics, violence)"
		}
		name := sensitiveNames[cat]
		if name == "" {
			name = "the " + cat + " category"
		}
		return "Open specially protected records about " + name
	}
	sc, unknown := ParseScopes(scope)
	if len(unknown) != 0 || len(sc.Resources) != 1 || len(sc.Other) != 0 || strings.Contains(scope, " ") {
		return UnknownDescription
	}
	return describeResource(sc.Resources[0])
}

func describeResource(r ResourceScope) string {
	var b strings.Builder
	b.WriteString(permVerbs(r.Perms))
	b.WriteByte(' ')
	noun := "all kinds of records"
	if r.Type != "*" {
		noun = typeNoun(r.Type)
	}
	switch r.Context {
	case ContextPatient:
		if r.Type == "*" {
			b.WriteString("all of the patient's records")
		} else {
			b.WriteString("the patient's " + noun)
		}
	case ContextUser:
		b.WriteString(noun + " you can access")
	case ContextSystem:
		b.WriteString(noun + " this app is registered for, with no user signed in")
	}
	if len(r.Query) > 0 {
		b.WriteString(", only those ")
		b.WriteString(describeQuery(r))
	}
	return b.String()
}

// permVerbs lists the permissions as verbs in "cruds" order:
// "Create, read, update, delete and search".
func permVerbs(p Perm) string {
	verbs := [...]string{"create", "read", "update", "delete", "search"}
	var words []string
	for i, l := range permLetters {
		if p&l.perm != 0 {
			words = append(words, verbs[i])
		}
	}
	s := joinAnd(words)
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func joinAnd(words []string) string {
	switch len(words) {
	case 0:
		return ""
	case 1:
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

// typeNoun names the records of a resource type: from typeNouns, else the
// type's name split into lower-case words ("MolecularSequence" gives
// "molecular sequence records").
func typeNoun(typ string) string {
	if n, ok := typeNouns[typ]; ok {
		return n
	}
	var words []string
	start := 0
	for i := 1; i < len(typ); i++ {
		upper := isUpper(typ[i])
		// A word starts at an upper-case letter after a lower-case one, or
		// at the last upper-case letter of an acronym before a lower-case one.
		if upper && (!isUpper(typ[i-1]) || (i+1 < len(typ) && !isUpper(typ[i+1]))) {
			words = append(words, strings.ToLower(typ[start:i]))
			start = i
		}
	}
	words = append(words, strings.ToLower(typ[start:]))
	return strings.Join(words, " ") + " records"
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }

// describeQuery describes a granular scope's constraints, each search
// parameter in turn, keys sorted.
func describeQuery(r ResourceScope) string {
	var parts []string
	// Walk the canonical form so the order is stable.
	keys := make([]string, 0, len(r.Query))
	for k := range r.Query {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range r.Query[k] {
			parts = append(parts, describeParam(k, v))
		}
	}
	return joinAnd(parts)
}

func describeParam(key, value string) string {
	q := quoteValue(value)
	switch key {
	case "category":
		return "in the " + q + " category"
	case "code":
		return "with the code " + q
	case "status":
		return "with the status " + q
	case "type":
		return "of the type " + q
	}
	return "where " + quoteValue(key) + " is " + q
}

// quoteValue shows a search value to a person: a token's code without its
// system (the part after the last "|"), shortened to 40 characters and
// quoted with Go's escapes, so control characters and quotes cannot break
// out of the sentence.
func quoteValue(v string) string {
	if i := strings.LastIndexByte(v, '|'); i >= 0 && i+1 < len(v) {
		v = v[i+1:]
	}
	const max = 40
	if utf8.RuneCountInString(v) > max {
		runes := []rune(v)
		v = string(runes[:max]) + "…"
	}
	return strconv.Quote(v)
}
