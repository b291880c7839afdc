// Command openserver is Warden's FHIR API with enforcement switched off:
// the same store, handlers, middleware and TLS as 'warden serve', but no
// token check and no authorization decision (fhirapi's Unauthenticated
// test build). It exists only to measure, side by side, what enforcement
// costs; it must never serve real data.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/sealing"
	"github.com/wardenfhir/warden/internal/server"
	"github.com/wardenfhir/warden/internal/store/postgres"
	"github.com/wardenfhir/warden/internal/store/sqlite"
	"github.com/wardenfhir/warden/internal/store/sqlstore"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9444", "listen address")
	cert := flag.String("cert", "", "server certificate (PEM)")
	key := flag.String("key", "", "server key (PEM)")
	db := flag.String("db", "", "SQLite database of a Warden instance")
	storeURL := flag.String("store", "", "postgres:// URL of a Warden instance's database (instead of -db)")
	cursorKey := flag.String("cursor-key", "", "the instance's DATA_DIR/keys/cursor.key")
	cacheMB := flag.Int("read-cache-mb", 64, "the read cache, as store.read_cache_mb")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var st *sqlstore.Store
	var err error
	if *storeURL != "" {
		st, err = postgres.Open(ctx, *storeURL, postgres.Options{})
	} else {
		st, err = sqlite.Open(ctx, *db, sqlite.Options{Synchronous: "full"})
	}
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	st.CacheReads(int64(*cacheMB)<<20, sealing.Unsealed)
	ck, err := os.ReadFile(*cursorKey)
	if err != nil {
		log.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		log.Fatal(err)
	}
	api, err := fhirapi.New(st, fhirapi.Options{BaseURL: "https://" + *addr + "/fhir", CursorKey: ck, Unauthenticated: true})
	if err != nil {
		log.Fatal(err)
	}
	srv := server.New(server.Options{
		Addr: *addr, TLS: &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair}},
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: time.Minute,
		IdleTimeout: 2 * time.Minute, ShutdownTimeout: 5 * time.Second, MaxBodyBytes: 10 << 20, Ready: st.Ping,
	})
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	srv.Handle(api.Prefix(), api)
	if err := srv.Serve(ctx); err != nil {
		log.Fatal(err)
	}
}
