package fieldcrypt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wardenfhir/warden/internal/store"
)

// Sealed is one sealed value for the re-encryption job: an id the caller
// understands (to write the new ciphertext back), where it belongs, and
// the ciphertext.
type Sealed struct {
	Ref        string
	AD         AD
	Ciphertext []byte
}

// Source lists sealed values in a stable order, a batch at a time:
// Next returns the items after cursor after ("" for the start) and the
// cursor of the last item returned; an empty returned cursor means the
// end. The lead's store iteration implements it.
type Source interface {
	Next(ctx context.Context, after string) (items []Sealed, cursor string, err error)
}

// ResealJob describes a re-encryption run.
type ResealJob struct {
	// Name identifies the job's progress record: a run with the name of
	// an unfinished one resumes it.
	Name   string
	Source Source
	// Write stores a re-sealed value in place of item's ciphertext.
	Write func(ctx context.Context, item Sealed, resealed []byte) error
	// Total is how many items the source holds, if the caller knows
	// (for done/total); 0 when unknown.
	Total int64
	// OnBatch, if set, is called with the progress after each batch.
	OnBatch func(Progress)
}

// ScopeCount counts what a job saw in one "tenant/category".
type ScopeCount struct {
	Scanned  int64 `json:"scanned"`
	OnOldKey int64 `json:"onOldKey"` // found under a key that was not the primary
	Resealed int64 `json:"resealed"` // of those, moved to the primary
}

// Progress is the persisted state of a re-encryption job.
type Progress struct {
	Name     string                 `json:"name"`
	Cursor   string                 `json:"cursor"`
	Done     int64                  `json:"done"`
	Total    int64                  `json:"total"`
	Resealed int64                  `json:"resealed"`
	Shredded int64                  `json:"shredded"` // values whose keys are destroyed: left as they are
	Failed   int64                  `json:"failed"`   // values that do not open (ErrOpen): left as they are
	Finished bool                   `json:"finished"`
	Started  time.Time              `json:"started"`
	Updated  time.Time              `json:"updated"`
	Scopes   map[string]*ScopeCount `json:"scopes"`
}

// RunReseal runs a re-encryption job: every value the source lists is
// passed through Reseal and, when it moved to a new key, written back
// with job.Write. Progress is saved in the records after each batch, so
// a run stopped by an error, a cancelled context or a crash resumes
// after the last saved batch when run again with the same name (the
// items of an unsaved batch are seen again; Reseal leaves values already
// on the primary key as they are, so that is harmless). A finished job
// run again starts over. Values that do not open are counted and left;
// a store, KEK or write failure stops the run with the error.
func (k *Keys) RunReseal(ctx context.Context, job ResealJob) (Progress, error) {
	if job.Name == "" || job.Source == nil || job.Write == nil {
		return Progress{}, errors.New("fieldcrypt: a reseal job needs a name, a source and a writer")
	}
	p, old, err := k.loadProgress(ctx, job.Name)
	if err != nil {
		return Progress{}, err
	}
	if p.Finished || old == nil {
		p = Progress{Name: job.Name, Started: k.now().UTC(), Scopes: map[string]*ScopeCount{}}
	}
	p.Total = job.Total
	for {
		if err := ctx.Err(); err != nil {
			return p, err
		}
		items, next, err := job.Source.Next(ctx, p.Cursor)
		if err != nil {
			return p, fmt.Errorf("fieldcrypt: reseal job source: %w", err)
		}
		for _, it := range items {
			if err := k.resealOne(ctx, job, it, &p); err != nil {
				return p, err
			}
		}
		p.Done += int64(len(items))
		p.Cursor = next
		p.Finished = next == ""
		p.Updated = k.now().UTC()
		if err := k.saveProgress(ctx, p); err != nil {
			return p, err
		}
		if job.OnBatch != nil {
			job.OnBatch(p)
		}
		if p.Finished {
			return p, nil
		}
	}
}

func (k *Keys) resealOne(ctx context.Context, job ResealJob, it Sealed, p *Progress) error {
	h, _, herr := ParseHeader(it.Ciphertext)
	var sc *ScopeCount
	if herr == nil {
		key := scopeKey(h.Category, h.Tenant)
		if sc = p.Scopes[key]; sc == nil {
			sc = &ScopeCount{}
			p.Scopes[key] = sc
		}
		sc.Scanned++
	}
	out, changed, err := k.Reseal(ctx, it.Ciphertext, it.AD)
	switch {
	case errors.Is(err, ErrShredded):
		p.Shredded++
		return nil
	case errors.Is(err, ErrOpen):
		p.Failed++
		return nil
	case err != nil:
		return err
	case !changed:
		return nil
	}
	sc.OnOldKey++
	if err := job.Write(ctx, it, out); err != nil {
		return fmt.Errorf("fieldcrypt: reseal job write: %w", err)
	}
	sc.Resealed++
	p.Resealed++
	return nil
}

func (k *Keys) loadProgress(ctx context.Context, name string) (Progress, []byte, error) {
	r, err := k.records.GetRecord(ctx, kindJob, name)
	if errors.Is(err, store.ErrNotFound) {
		return Progress{}, nil, nil
	}
	if err != nil {
		return Progress{}, nil, fmt.Errorf("fieldcrypt: reading records: %w", err)
	}
	var p Progress
	if err := json.Unmarshal(r.Value, &p); err != nil {
		return Progress{}, nil, fmt.Errorf("fieldcrypt: reseal job %q: damaged progress record", name)
	}
	if p.Scopes == nil {
		p.Scopes = map[string]*ScopeCount{}
	}
	return p, r.Value, nil
}

func (k *Keys) saveProgress(ctx context.Context, p Progress) error {
	v, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := k.records.PutRecord(ctx, store.Record{Kind: kindJob, Key: p.Name, Value: v}); err != nil {
		return fmt.Errorf("fieldcrypt: saving reseal job progress: %w", err)
	}
	return nil
}
