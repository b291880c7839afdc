package tlog

import (
	"context"
	"errors"
	"net/http"
	"os"

	"github.com/transparency-dev/tessera/api/layout"
)

// Handler serves the log read-only in the c2sp.org/tlog-tiles layout:
// GET /checkpoint, /tile/<L>/<N>[.p/<W>] and /tile/entries/<N>[.p/<W>],
// so that witnesses, monitors and auditors can follow it with standard
// tiles clients. Mount it under a prefix with http.StripPrefix. It reads
// through Tessera's reader, never from a client-supplied file path, so the
// private state directory is unreachable. Leaves are commitments, public by
// design (see the package doc).
func (l *Log) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /checkpoint", func(w http.ResponseWriter, r *http.Request) {
		cp, err := l.Checkpoint(r.Context())
		writeResource(w, cp, err, "text/plain; charset=utf-8", "no-cache")
	})
	mux.HandleFunc("GET /tile/entries/{index...}", func(w http.ResponseWriter, r *http.Request) {
		index, p, err := layout.ParseTileIndexPartial(r.PathValue("index"))
		if err != nil {
			http.Error(w, "malformed entry bundle path", http.StatusBadRequest)
			return
		}
		b, err := l.readResource(r.Context(), func(ctx context.Context) ([]byte, error) { return l.reader.ReadEntryBundle(ctx, index, p) })
		writeResource(w, b, err, "application/octet-stream", immutable(p))
	})
	mux.HandleFunc("GET /tile/{level}/{index...}", func(w http.ResponseWriter, r *http.Request) {
		level, index, p, err := layout.ParseTileLevelIndexPartial(r.PathValue("level"), r.PathValue("index"))
		if err != nil {
			http.Error(w, "malformed tile path", http.StatusBadRequest)
			return
		}
		b, err := l.readResource(r.Context(), func(ctx context.Context) ([]byte, error) { return l.reader.ReadTile(ctx, level, index, p) })
		writeResource(w, b, err, "application/octet-stream", immutable(p))
	})
	return mux
}

func (l *Log) readResource(ctx context.Context, read func(context.Context) ([]byte, error)) ([]byte, error) {
	if l.isClosed() {
		return nil, ErrClosed
	}
	return read(ctx)
}

// immutable returns the Cache-Control for a tile: full tiles never change;
// a partial one is superseded (and eventually removed) as the tree grows.
func immutable(partial uint8) string {
	if partial == 0 {
		return "public, max-age=31536000, immutable"
	}
	return "public, max-age=60"
}

func writeResource(w http.ResponseWriter, b []byte, err error, contentType, cacheControl string) {
	switch {
	case errors.Is(err, os.ErrNotExist):
		http.Error(w, "not found", http.StatusNotFound)
		return
	case errors.Is(err, ErrClosed):
		http.Error(w, "log closed", http.StatusServiceUnavailable)
		return
	case err != nil:
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", cacheControl)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b)
}
