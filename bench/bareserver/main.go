// Command bareserver is the yardstick of Warden's benchmarks: a bare Go
// HTTPS server that answers every request with the same bytes from
// memory, using the same TLS configuration as Warden. Whatever it does on
// a machine is the most any Go HTTPS server can do there; Warden's
// figures are reported as ratios to it.
package main

import (
	"crypto/tls"
	"flag"
	"log"
	"net/http"
	"os"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9443", "listen address")
	cert := flag.String("cert", "", "server certificate (PEM)")
	key := flag.String("key", "", "server key (PEM)")
	body := flag.String("body", "", "file whose bytes every response carries")
	flag.Parse()
	b, err := os.ReadFile(*body)
	if err != nil {
		log.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Addr:      *addr,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
			w.Write(b)
		}),
	}
	log.Fatal(srv.ListenAndServeTLS("", ""))
}
