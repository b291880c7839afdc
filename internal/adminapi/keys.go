package adminapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/wardenfhir/warden/internal/fieldcrypt"
)

// KeyAdmin is the field-level encryption key lifecycle (fieldcrypt.Keys,
// with the change published to every process).
type KeyAdmin interface {
	Status(ctx context.Context) ([]fieldcrypt.KeyStatus, error)
	Rotate(ctx context.Context, category string) (uint32, error)
	ShredCategory(ctx context.Context, category string) (fieldcrypt.ShredReport, error)
	ShredPatient(ctx context.Context, category, patient string) (fieldcrypt.ShredReport, error)
}

// WithKeys adds the key lifecycle: GET /admin/keys (status), POST
// /admin/keys/{category}/rotate, and crypto-shredding, POST
// /admin/keys/{category}/shred and
// /admin/keys/{category}/patients/{patient}/shred, each with the body
// {"confirm": "<category>"} so that a stray request cannot erase data.
// Every request is audited like the rest of the admin API, so the trail
// records who shredded what and when.
func (a *API) WithKeys(k KeyAdmin) *API {
	a.keys = k
	return a
}

func (a *API) keyStatus(w http.ResponseWriter, r *http.Request) {
	if a.keys == nil {
		writeError(w, http.StatusNotImplemented, "field-level encryption is disabled")
		return
	}
	st, err := a.keys.Status(r.Context())
	if err != nil {
		a.keyFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": st})
}

func (a *API) rotateKeys(w http.ResponseWriter, r *http.Request) {
	if a.keys == nil {
		writeError(w, http.StatusNotImplemented, "field-level encryption is disabled")
		return
	}
	cat := r.PathValue("category")
	id, err := a.keys.Rotate(r.Context(), cat)
	if err != nil {
		a.keyFail(w, r, err)
		return
	}
	a.log.Info("category key rotated", "category", cat, "key_id", id)
	writeJSON(w, http.StatusOK, map[string]any{"category": cat, "primary_key_id": id})
}

// shredRequest is the body of the shred endpoints.
type shredRequest struct {
	Confirm string `json:"confirm"`
}

func (a *API) shred(w http.ResponseWriter, r *http.Request) {
	if a.keys == nil {
		writeError(w, http.StatusNotImplemented, "field-level encryption is disabled")
		return
	}
	cat, patient := r.PathValue("category"), r.PathValue("patient")
	var req shredRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Confirm != cat {
		writeError(w, http.StatusBadRequest, `confirm by sending {"confirm": "<category>"}: shredding cannot be undone`)
		return
	}
	var rep fieldcrypt.ShredReport
	var err error
	if patient == "" {
		rep, err = a.keys.ShredCategory(r.Context(), cat)
	} else {
		rep, err = a.keys.ShredPatient(r.Context(), cat, patient)
	}
	if err != nil {
		a.keyFail(w, r, err)
		return
	}
	a.log.Info("key material destroyed", "category", cat, "patient_scope", patient != "")
	writeJSON(w, http.StatusOK, rep)
}

func (a *API) keyFail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, fieldcrypt.ErrBadName):
		writeError(w, http.StatusBadRequest, "invalid category or patient id")
	case errors.Is(err, fieldcrypt.ErrShredded):
		writeError(w, http.StatusConflict, "already shredded")
	case errors.Is(err, fieldcrypt.ErrKeyUnwrap):
		writeError(w, http.StatusServiceUnavailable, "the key-encryption key cannot unwrap the keys; check the key service")
	default:
		a.fail(w, r, err)
	}
}
