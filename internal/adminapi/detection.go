package adminapi

import (
	"net/http"
	"net/netip"
)

// Releaser lifts what the abuse detection imposed (detect.Engine).
type Releaser interface {
	Release(client string) int
	ReleaseUser(user string) bool
	ReleaseToken(token string) bool
	ReleasePeer(addr netip.Addr) bool
}

// WithDetection adds POST /admin/detection/release with a body naming a
// client, a user (fhirUser), a token id or a peer address: the standing
// step-up, throttle or quarantine on it is lifted (in every replica when
// the Releaser shares standings). Audited like every admin request.
func (a *API) WithDetection(r Releaser) *API {
	a.detection = r
	return a
}

type releaseRequest struct {
	Client string `json:"client"`
	User   string `json:"user"`
	Token  string `json:"token"`
	Peer   string `json:"peer"`
}

func (a *API) release(w http.ResponseWriter, r *http.Request) {
	if a.detection == nil {
		writeError(w, http.StatusNotImplemented, "abuse detection is disabled")
		return
	}
	var req releaseRequest
	if !decode(w, r, &req) {
		return
	}
	named := 0
	for _, s := range []string{req.Client, req.User, req.Token, req.Peer} {
		if s != "" {
			named++
		}
	}
	if named != 1 {
		writeError(w, http.StatusBadRequest, `name exactly one of "client", "user", "token" or "peer"`)
		return
	}
	var peer netip.Addr
	if req.Peer != "" {
		var err error
		if peer, err = netip.ParseAddr(req.Peer); err != nil {
			writeError(w, http.StatusBadRequest, `"peer" is not an IP address`)
			return
		}
	}
	released := 0
	switch {
	case req.Client != "":
		released = a.detection.Release(req.Client)
	case req.User != "":
		if a.detection.ReleaseUser(req.User) {
			released = 1
		}
	case peer.IsValid():
		if a.detection.ReleasePeer(peer) {
			released = 1
		}
	default:
		if a.detection.ReleaseToken(req.Token) {
			released = 1
		}
	}
	a.log.Info("detection actions lifted", "released", released)
	writeJSON(w, http.StatusOK, map[string]int{"released": released})
}
