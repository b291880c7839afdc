package witness

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
)

// MaxRequestBody bounds an add-checkpoint body. A checkpoint with a few
// signatures and 63 proof lines is a few KiB.
const MaxRequestBody = 1 << 20

// NewHandler serves the witness over HTTP (c2sp.org/tlog-witness):
// POST /add-checkpoint, and GET /healthz for liveness. Every accepted or
// refused checkpoint is logged to log with its origin, sizes and reason;
// requests carry no PHI (checkpoints hold only an origin, a size and a hash).
func NewHandler(w *Witness, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", func(rw http.ResponseWriter, r *http.Request) {
		serveAddCheckpoint(w, log, rw, r)
	})
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(rw, "ok\n")
	})
	return mux
}

// refusal maps a witness error to its status code and public text
// (c2sp.org/tlog-witness, "add-checkpoint" responses). Errors not in the
// table are internal: 500, with the detail only in the log.
var refusals = []struct {
	err    error
	status int
	text   string
}{
	{ErrMalformed, http.StatusBadRequest, "malformed request"},
	{ErrOldSizeTooLarge, http.StatusBadRequest, "old size larger than checkpoint size"},
	{ErrUnknownLog, http.StatusNotFound, "unknown log"},
	{ErrBadSignature, http.StatusForbidden, "no valid log signature"},
	{ErrConflict, http.StatusConflict, "checkpoint conflicts with the latest cosigned checkpoint"},
	{ErrBadProof, http.StatusUnprocessableEntity, "consistency proof does not verify"},
}

func serveAddCheckpoint(w *Witness, log *slog.Logger, rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, MaxRequestBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			log.Warn("witness refused checkpoint", "status", http.StatusRequestEntityTooLarge, "reason", "body too large")
			http.Error(rw, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		log.Warn("witness refused checkpoint", "status", http.StatusBadRequest, "reason", "reading body failed")
		http.Error(rw, "reading request body failed", http.StatusBadRequest)
		return
	}
	var out Outcome
	req, err := ParseRequest(body)
	var cosigs []byte
	if err == nil {
		out.OldSize = req.OldSize
		cosigs, out, err = w.AddCheckpoint(r.Context(), req)
	}
	attrs := []any{"origin", out.Origin, "old_size", out.OldSize, "size", out.Size}
	if err == nil {
		log.Info("witness cosigned checkpoint", attrs...)
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rw.Write(cosigs)
		return
	}
	var conflict *ConflictError
	if errors.As(err, &conflict) {
		log.Info("witness refused checkpoint", append(attrs, "status", http.StatusConflict, "reason", err.Error(), "witness_size", conflict.Size)...)
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(http.StatusConflict)
		io.WriteString(rw, strconv.FormatUint(conflict.Size, 10)+"\n")
		return
	}
	for _, f := range refusals {
		if errors.Is(err, f.err) {
			log.Warn("witness refused checkpoint", append(attrs, "status", f.status, "reason", err.Error())...)
			http.Error(rw, f.text, f.status)
			return
		}
	}
	log.Error("witness failed", append(attrs, "status", http.StatusInternalServerError, "error", err.Error())...)
	http.Error(rw, "internal error", http.StatusInternalServerError)
}
