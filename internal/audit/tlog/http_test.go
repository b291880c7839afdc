package tlog

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
)

func TestHandler(t *testing.T) {
	s, _, vkey := testKeys(t)
	dir := t.TempDir()
	l := openTestLog(t, dir, s)
	leaves := appendN(t, l, "http", 300)
	_, parsed := waitCheckpoint(t, l, vkey, 300)
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("not for serving"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	get := func(method, path string) (int, []byte, http.Header) {
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, resp.Header
	}

	refused := []struct {
		name, method, path string
		want               int
	}{
		{"private tree state", "GET", "/.state/treeState", http.StatusNotFound},
		{"traversal to tree state", "GET", "/tile/../.state/treeState", http.StatusNotFound},
		{"encoded traversal", "GET", "/tile/0/..%2f..%2f.state%2ftreeState", http.StatusBadRequest},
		{"other file in the log dir", "GET", "/secret", http.StatusNotFound},
		{"tile level out of range", "GET", "/tile/64/000", http.StatusBadRequest},
		{"malformed tile index", "GET", "/tile/0/abc", http.StatusBadRequest},
		{"partial width 256", "GET", "/tile/0/000.p/256", http.StatusBadRequest},
		{"malformed bundle index", "GET", "/tile/entries/x1", http.StatusBadRequest},
		{"tile not yet written", "GET", "/tile/0/x001/000", http.StatusNotFound},
		{"write method", "POST", "/checkpoint", http.StatusMethodNotAllowed},
		{"delete method", "DELETE", "/tile/entries/000", http.StatusMethodNotAllowed},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			code, body, _ := get(c.method, c.path)
			if code != c.want {
				t.Fatalf("%s %s = %d, want %d", c.method, c.path, code, c.want)
			}
			if bytes.Contains(body, []byte("size")) || bytes.Contains(body, []byte("not for serving")) {
				t.Fatalf("body leaks state: %q", body)
			}
		})
	}

	code, body, h := get("GET", "/checkpoint")
	if code != http.StatusOK || h.Get("Cache-Control") != "no-cache" {
		t.Fatalf("checkpoint: %d %q %v", code, body, h)
	}
	if _, err := Verify(t.Context(), vkey, body, func(i uint64) ([]byte, error) { return leaves[i], nil }); err != nil {
		t.Fatalf("served checkpoint does not verify: %v", err)
	}
	code, _, h = get("GET", "/tile/entries/000")
	if code != http.StatusOK || h.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Fatalf("full entry bundle: %d %v", code, h)
	}

	// A standard tiles client can build and check a proof from the handler.
	fetch := func(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
		path := "/" + layout.TilePath(level, index, p)
		code, b, _ := get("GET", path)
		if code != http.StatusOK {
			return nil, os.ErrNotExist
		}
		return b, nil
	}
	pb, err := client.NewProofBuilder(t.Context(), parsed.Size, fetch)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pb.InclusionProof(t.Context(), 270)
	if err != nil {
		t.Fatalf("proof over HTTP: %v", err)
	}
	if err := VerifyInclusion(vkey, body, leaves[270], 270, p); err != nil {
		t.Fatalf("proof over HTTP does not verify: %v", err)
	}
	bundle, err := client.GetEntryBundle(t.Context(), func(ctx context.Context, i uint64, p uint8) ([]byte, error) {
		code, b, _ := get("GET", "/"+layout.EntriesPath(i, p))
		if code != http.StatusOK {
			return nil, os.ErrNotExist
		}
		return b, nil
	}, 1, parsed.Size)
	if err != nil || !bytes.Equal(bundle.Entries[270-256], leaves[270]) {
		t.Fatalf("entry bundle over HTTP: %v", err)
	}

	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := get("GET", "/checkpoint"); code != http.StatusServiceUnavailable {
		t.Fatalf("checkpoint after Close = %d, want 503", code)
	}
}
