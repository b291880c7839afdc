package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"
	"k8s.io/klog/v2"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/audit/eventdb"
	"github.com/wardenfhir/warden/internal/audit/index"
	"github.com/wardenfhir/warden/internal/audit/journal"
	"github.com/wardenfhir/warden/internal/audit/tlog"
	"github.com/wardenfhir/warden/internal/config"
	"github.com/wardenfhir/warden/internal/keyring"
	"github.com/wardenfhir/warden/internal/store"
)

// auditTrail is the audit pipeline of a running instance: the journal in
// DATA_DIR/audit/journal (the durability point of every request), the
// transparency log in DATA_DIR/audit/log, and the sequencer between them.
type auditTrail struct {
	journal  *journal.Recovering
	log      *tlog.Log
	pipeline *audit.JournaledPipeline
	// index keeps the searchable copy of the trail, in the background
	// and before every AuditEvent read: in events (audit.index_store
	// trail) or as AuditEvent resources in the FHIR store.
	index  *index.Indexer
	events *eventdb.DB // nil when the copy is in the FHIR store
}

// auditLogPrefix is where the FHIR listener serves the transparency log
// (c2sp.org/tlog-tiles: checkpoint, tiles, entry bundles).
const auditLogPrefix = "/audit/log"

// journalRetry is how often a failed audit journal (disk full, I/O
// error) is reopened; requests get 503 until it is.
const journalRetry = time.Second

// sequenceEvery is how often the sequencer looks at the journal without
// being kicked.
const sequenceEvery = 200 * time.Millisecond

// Batching of the audit log: requests do not wait for it (the journal is
// their durability point); the sequencer appends up to 1,024 commitments
// at once, so large batches flush full. Each flush rewrites the partial
// tiles above the new leaves and syncs the directory of every file it
// renames, so four bundles per flush rather than one cost the log about
// a quarter less CPU per event under load (docs/PERFORMANCE.md).
const (
	auditBatchSize = 1024
	auditBatchAge  = 50 * time.Millisecond
)

// openAudit opens (creating on first start) the audit log and its signing
// key, recovers spooled events, and returns the pipeline.
func openAudit(ctx context.Context, cfg config.Config, db database, keys *keyring.Keyring, base string, log *slog.Logger) (*auditTrail, error) {
	dir := filepath.Join(cfg.DataDir, "audit")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := claimTrail(ctx, db, dir); err != nil {
		return nil, err
	}
	signer, err := auditSigner(dir, filepath.Join(cfg.DataDir, "keys", "audit-signer.sealed"), keys, base)
	if err != nil {
		return nil, err
	}
	// Tessera logs through klog; send that to the instance's structured
	// log instead of raw lines on stderr (it logs the log's state, never
	// an event).
	klog.SetSlogLogger(log.With("component", "audit-log"))
	var policy []byte
	if cfg.Audit.WitnessPolicy != "" {
		if policy, err = os.ReadFile(cfg.Audit.WitnessPolicy); err != nil {
			return nil, fmt.Errorf("reading the witness policy: %w", err)
		}
	}
	lg, err := tlog.Open(ctx, tlog.Options{Dir: filepath.Join(dir, "log"), Origin: signer.Name(), Signer: signer,
		BatchMaxSize: auditBatchSize, BatchMaxAge: auditBatchAge, Witnesses: policy})
	if err != nil {
		return nil, fmt.Errorf("opening the audit log: %w", err)
	}
	jr, err := journal.OpenRecovering(filepath.Join(dir, "journal"), journalRetry)
	if err != nil {
		lg.Close(ctx)
		return nil, fmt.Errorf("opening the audit journal: %w", err)
	}
	// "helper-process", or "in-process" where the helper could not start
	// (or the program does not serve it): more CPU per request.
	log.Info("audit journal open", "fsync", jr.SyncMode())
	p, err := audit.NewJournaledPipeline(jr, lg, db, base)
	if err == nil {
		err = p.CheckJournal(ctx)
	}
	if err != nil {
		jr.Close()
		lg.Close(ctx)
		return nil, journalBehind(err)
	}
	return &auditTrail{journal: jr, log: lg, pipeline: p}, nil
}

// indexWithinJournal refuses an index ahead of its journal (ErrJournalBehind):
// it names entries the journal no longer holds.
func indexWithinJournal(ctx context.Context, x *index.Indexer, j interface{ Len() uint64 }) error {
	c, err := x.Cursor(ctx)
	if err != nil {
		return err
	}
	if n := j.Len(); c > n {
		return journalBehind(fmt.Errorf("%w: it holds %d entries, and %d were indexed", audit.ErrJournalBehind, n, c))
	}
	return nil
}

// kindTrail is the records kind of the trail that owns the store's audit
// records: key "owner", value the id in DATA_DIR/audit/trail.id.
const kindTrail = "audit-trail"

// errOtherTrail is a store whose audit records belong to another trail.
var errOtherTrail = errors.New("the store's audit records belong to another audit trail")

// claimTrail makes this data directory's trail the owner of the store's
// audit records (where the sequencer and the indexer keep their place in
// the journal, and each event's leaf index), or refuses with
// errOtherTrail if another one owns them. Those records are one set per
// store: a second instance with its own journal on the same database
// (PostgreSQL replicas, each with its own DATA_DIR) would take the
// other's positions for its own, and its events would never reach its
// log. The same holds for an instance whose DATA_DIR/audit was replaced.
func claimTrail(ctx context.Context, db store.Records, dir string) error {
	id, err := trailID(dir)
	if err != nil {
		return err
	}
	err = db.InsertRecord(ctx, store.Record{Kind: kindTrail, Key: "owner", Value: []byte(id)})
	if !errors.Is(err, store.ErrConflict) {
		return err
	}
	r, err := db.GetRecord(ctx, kindTrail, "owner")
	if err != nil {
		return err
	}
	if string(r.Value) != id {
		return fmt.Errorf("%w (trail %s; this instance's, in %s, is %s): run one audited instance per database, "+
			"and never replace an instance's DATA_DIR/audit without its database; see docs/AUDIT.md, \"Files\"",
			errOtherTrail, r.Value, filepath.Join(dir, trailIDFile), id)
	}
	return nil
}

// trailIDFile names the trail of a data directory: 32 hex digits, made
// at the audit trail's first start.
const trailIDFile = "trail.id"

// trailID reads dir's trail id, making it on first use.
func trailID(dir string) (string, error) {
	path := filepath.Join(dir, trailIDFile)
	if b, err := os.ReadFile(path); err == nil {
		id := strings.TrimSpace(string(b))
		if len(id) != 32 {
			return "", fmt.Errorf("%s: not a trail id", path)
		}
		return id, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var b [16]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := f.WriteString(id + "\n"); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	// The file's name durable too before the store records the claim: a
	// crash must not leave a claim this directory no longer names.
	d, err := os.Open(dir)
	if err != nil {
		return "", err
	}
	defer d.Close()
	return id, d.Sync()
}

// journalBehind adds to ErrJournalBehind what an operator does about it.
func journalBehind(err error) error {
	if errors.Is(err, audit.ErrJournalBehind) {
		return fmt.Errorf("%w; refusing to serve: restore DATA_DIR/audit/journal from its backup ('warden audit verify' names what is missing)", err)
	}
	return err
}

// auditSigner returns the log's checkpoint signer: an Ed25519 signed-note
// key made on first start, kept sealed with the keyring, its public half
// in DIR/log.vkey for auditors and witnesses. The key's name (the log's
// origin) is fixed at creation: checkpoints of one log keep one origin
// whatever address the server later listens on.
func auditSigner(dir, sealedPath string, keys *keyring.Keyring, base string) (note.Signer, error) {
	const ad = "warden audit log signer"
	if b, err := os.ReadFile(sealedPath); err == nil {
		skey, err := keys.Unseal(b, []byte(ad))
		if err != nil {
			return nil, fmt.Errorf("opening the audit log key: %w", err)
		}
		return note.NewSigner(string(skey))
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	host := "localhost"
	if u, err := url.Parse(base); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	origin := "warden.audit/" + strings.ReplaceAll(host, ":", ".")
	skey, vkey, err := tlog.NewKey(origin)
	if err != nil {
		return nil, err
	}
	sealed, err := keys.Seal([]byte(skey), []byte(ad))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(sealedPath), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "log.vkey"), []byte(vkey+"\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(sealedPath, sealed, 0o600); err != nil {
		return nil, err
	}
	return note.NewSigner(skey)
}

// registerMetrics exposes the trail's health on /metrics: how long events
// take to reach the log (the issue asks for under 1 s at p99) and how many
// wait for it.
func (t *auditTrail) registerMetrics(reg prometheus.Registerer) error {
	lag := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "warden_audit_log_lag_seconds",
		Help:    "Time from a request to its audit event's leaf being sequenced in the transparency log.",
		Buckets: []float64{0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30},
	})
	entries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "warden_audit_journal_entries",
		Help: "Audit events in the journal.",
	}, func() float64 { return float64(t.journal.Len()) })
	commits := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "warden_audit_journal_commits_total",
		Help: "Group commits of the audit journal (one write and one fsync each); entries appended ÷ commits is the group size.",
	}, func() float64 { return float64(t.journal.Commits()) })
	readBytes := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "warden_audit_journal_read_bytes_total",
		Help: "Bytes of the audit journal read back by the transparency log's sequencer, the searchable copy's indexer and the SIEM export; against the journal's size, how often it is read (once by each).",
	}, func() float64 { return float64(t.journal.ReadBytes()) })
	// The background parts fail without refusing requests (the journal
	// keeps every event): operators must see it here.
	sequencer := failingGauge("warden_audit_sequencer_failing",
		"1 while events cannot be sequenced into the transparency log (the journal keeps them)", t.pipeline.Err)
	indexer := failingGauge("warden_audit_indexer_failing",
		"1 while the searchable copy of the trail (AuditEvent search) cannot be indexed", func() error {
			if t.index == nil {
				return nil
			}
			return t.index.Err()
		})
	backlog := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "warden_audit_index_backlog",
		Help: "Audit events journaled but not yet in the searchable copy (AuditEvent search catches up first; audit.index_max_backlog bounds it).",
	}, func() float64 {
		if t.index == nil {
			return 0
		}
		return float64(t.index.Backlog())
	})
	disk := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "warden_audit_index_disk_bytes",
		Help: "Disk space of the trail's own searchable copy, DATA_DIR/audit/index (0 when the copy is in the FHIR store).",
	}, func() float64 {
		if t.events == nil {
			return 0
		}
		return float64(t.events.DiskBytes())
	})
	for _, c := range []prometheus.Collector{lag, entries, commits, readBytes, sequencer, indexer, backlog, disk} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	t.pipeline.ObserveLag(func(d time.Duration) { lag.Observe(d.Seconds()) })
	return nil
}

// Run sequences journaled events into the log until ctx ends.
func (t *auditTrail) Run(ctx context.Context) error {
	if t.index != nil {
		go t.index.Run(ctx, indexEvery)
	}
	return t.pipeline.Run(ctx, sequenceEvery)
}

// indexEvery is how often the trail's searchable copy catches up in the
// background (AuditEvent reads catch it up first anyway).
const indexEvery = time.Second

// Close stops the log (its last checkpoint is published) and the journal.
func (t *auditTrail) Close(ctx context.Context) error {
	err := errors.Join(t.log.Close(ctx), t.journal.Close())
	if t.events != nil {
		err = errors.Join(err, t.events.Close())
	}
	return err
}

// failingGauge is a gauge that is 1 while failing returns an error.
func failingGauge(name, help string, failing func() error) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
		if failing() != nil {
			return 1
		}
		return 0
	})
}
