package fhirapi

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/wardenfhir/warden/internal/store"
)

// cursorTTL bounds how long a paging link stays usable.
const cursorTTL = time.Hour

// sealedCursor is what a paging link carries: the store's cursor bound to
// the query it continues (a digest of the canonical query string) and to
// when it was issued, authenticated with HMAC-SHA-256 under the server's
// cursor key. A cursor replayed with another query, altered, or expired is
// refused with store.ErrBadCursor.
type sealedCursor struct {
	Query  []byte `json:"q"`
	Store  string `json:"c"`
	Issued int64  `json:"t"`
}

func (a *API) sealCursor(query, storeCursor string) string {
	qd := sha256.Sum256([]byte(query))
	payload, _ := json.Marshal(sealedCursor{Query: qd[:16], Store: storeCursor, Issued: a.now().Unix()})
	mac := hmac.New(sha256.New, a.opts.CursorKey)
	mac.Write(payload)
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (a *API) openCursor(query, token string) (string, error) {
	p64, m64, ok := strings.Cut(token, ".")
	if !ok || len(token) > 4096 {
		return "", store.ErrBadCursor
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	sum, err2 := base64.RawURLEncoding.DecodeString(m64)
	if err1 != nil || err2 != nil {
		return "", store.ErrBadCursor
	}
	mac := hmac.New(sha256.New, a.opts.CursorKey)
	mac.Write(payload)
	if !hmac.Equal(sum, mac.Sum(nil)) {
		return "", store.ErrBadCursor
	}
	var c sealedCursor
	if json.Unmarshal(payload, &c) != nil {
		return "", store.ErrBadCursor
	}
	qd := sha256.Sum256([]byte(query))
	issued := time.Unix(c.Issued, 0)
	if !hmac.Equal(c.Query, qd[:16]) || a.now().Sub(issued) > cursorTTL || issued.After(a.now().Add(time.Minute)) {
		return "", store.ErrBadCursor
	}
	return c.Store, nil
}

// bindCursor binds what a paging cursor is sealed to, the canonical
// query, to the caller as well: a cursor that leaks to another client or
// patient is refused instead of continuing someone else's search.
func bindCursor(ctx context.Context, canonical string) string {
	p := PrincipalFrom(ctx)
	if p == nil {
		return canonical
	}
	return canonical + "\x00" + p.ClientID + "\x00" + p.Subject + "\x00" + p.Patient + "\x00" + p.Scope
}
