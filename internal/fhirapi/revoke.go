package fhirapi

import (
	"encoding/json"
	"net/http"

	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/store"
)

// revokeConsent implements POST [base]/Consent/[id]/$revoke, Warden's
// operation to withdraw a consent at once: the caller needs the right to
// update that Consent (a patient's app its own patient/Consent.u; an
// administrator's system/Consent.u). The Consent becomes inactive, and
// when it is an app grant's, the grant is revoked: its refresh tokens are
// deleted and its access tokens refused by every Warden process — all
// before the answer (200, the inactive Consent).
func (a *API) revokeConsent(w http.ResponseWriter, r *http.Request, seg []string) error {
	ctx := r.Context()
	id := seg[1]
	auditFrom(ctx).setAction("operation")
	if a.opts.RevokeGrant == nil {
		return errorf(http.StatusNotImplemented, "not-supported", "Consent revocation is not configured")
	}
	// May the caller change this Consent? (Decided as an update, with the
	// compartment, granular and consent checks of one.)
	if err := a.db(ctx).Tx(ctx, func(tx store.Tx) error {
		_, err := readForWrite(ctx, tx, policy.ActUpdate, "Consent", id)
		return err
	}); err != nil {
		return err
	}
	if err := a.opts.RevokeGrant(ctx, id); err != nil {
		a.log.Error("revoking a grant failed", "error", err.Error())
		return errorf(http.StatusServiceUnavailable, "transient", "The consent could not be revoked right now; retry")
	}
	// A grant's Consent is inactive now (the ledger did it); any other is
	// made so here, by the caller, with the caller's rights.
	if now, err := a.db(ctx).Read(ctx, "Consent", id); err == nil {
		var c map[string]any
		if json.Unmarshal(now.JSON, &c) == nil && c["status"] == "active" {
			c["status"] = "inactive"
			if err := a.db(ctx).Tx(ctx, func(tx store.Tx) error {
				_, _, err := a.updateIn(ctx, tx, "Consent", id, c, etag(now.Version))
				return err
			}); err != nil {
				return err
			}
		}
	}
	out, err := a.db(ctx).Read(ctx, "Consent", id)
	if err != nil {
		return err
	}
	return a.writeVersion(w, r, out, http.StatusOK)
}
