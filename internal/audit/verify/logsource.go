package verify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
)

// LogReader reads a transparency log in the c2sp.org/tlog-tiles layout:
// its checkpoint, hash tiles and entry bundles. A missing resource is an
// error wrapping os.ErrNotExist. Tessera's client.FileFetcher and
// client.HTTPFetcher implement it.
type LogReader interface {
	ReadCheckpoint(ctx context.Context) ([]byte, error)
	ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error)
	ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error)
}

// DirLog reads the log a server keeps in dir (DATA_DIR/audit/log), read
// only: Tessera's POSIX driver writes whole files and renames them into
// place, so a reader never sees half a tile.
func DirLog(dir string) LogReader { return client.FileFetcher{Root: dir} }

// HTTPLog reads the log served at prefix (for Warden, {server}/audit/log/).
// hc nil means http.DefaultClient.
func HTTPLog(prefix string, hc *http.Client) (LogReader, error) {
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	u, err := url.Parse(prefix)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("verify: log URL %q is not an http(s) URL", prefix)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	f, err := client.NewHTTPFetcher(u, hc)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	return f, nil
}

// errLeafMissing is a leaf below the checkpoint size whose entry bundle
// is absent.
var errLeafMissing = errors.New("verify: leaf missing from the log")

// eachLeaf calls fn for leaves 0 … size-1 of the log, reading each entry
// bundle (c2sp.org/tlog-tiles) once.
func eachLeaf(ctx context.Context, lr LogReader, size uint64, fn func(i uint64, leaf []byte) error) error {
	for b := uint64(0); b*layout.EntryBundleWidth < size; b++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		bundle, err := client.GetEntryBundle(ctx, lr.ReadEntryBundle, b, size)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: bundle %d", errLeafMissing, b)
		}
		if err != nil {
			return fmt.Errorf("verify: reading entry bundle %d: %w", b, err)
		}
		first := b * layout.EntryBundleWidth
		want := min(size-first, layout.EntryBundleWidth)
		if uint64(len(bundle.Entries)) < want {
			return fmt.Errorf("%w: bundle %d holds %d of %d leaves", errLeafMissing, b, len(bundle.Entries), want)
		}
		for k := range want {
			if err := fn(first+k, bundle.Entries[k]); err != nil {
				return err
			}
		}
	}
	return nil
}

// InclusionProof returns the RFC 6962 §2.1.1 audit path for the leaf at
// index in the tree of the given size (a checkpoint's size), built from
// the log's hash tiles.
func InclusionProof(ctx context.Context, lr LogReader, size, index uint64) ([][]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("%w: index %d not below size %d", ErrPending, index, size)
	}
	pb, err := client.NewProofBuilder(ctx, size, lr.ReadTile)
	if err != nil {
		return nil, fmt.Errorf("verify: proof builder: %w", err)
	}
	p, err := pb.InclusionProof(ctx, index)
	if err != nil {
		return nil, fmt.Errorf("verify: inclusion proof: %w", err)
	}
	return p, nil
}
