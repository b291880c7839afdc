package postgres_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/store/postgres"
)

func TestBus(t *testing.T) {
	url := os.Getenv("WARDEN_TEST_POSTGRES")
	if url == "" {
		t.Skip("WARDEN_TEST_POSTGRES not set (./scripts/test sets it)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bus := postgres.NewBus(url)
	ready := make(chan struct{})
	got := make(chan struct{}, 10)
	done := make(chan error)
	go func() {
		done <- bus.Listen(ctx, "warden_test_bus", func() { close(ready) }, func() { got <- struct{}{} })
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("listener never connected")
	}
	// A notice on another channel is not delivered.
	if err := bus.Publish(ctx, "warden_test_other"); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(ctx, "warden_test_bus"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("notice not delivered")
	}
	select {
	case <-got:
		t.Error("a notice on another channel was delivered")
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Listen did not stop with its context")
	}
	// Publishing to a database that is not there fails.
	if err := postgres.NewBus("postgres://nobody@127.0.0.1:1/none?connect_timeout=1").Publish(context.Background(), "x"); err == nil {
		t.Error("publish to a missing database succeeded")
	}
}
