package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
)

// TestAssign covers every conversion Scan makes and refuses, the ones a
// wrong schema type or a NULL in a NOT NULL column would reach.
func TestAssign(t *testing.T) {
	refused := []struct {
		name string
		dest any
		v    driver.Value
	}{
		{"NULL into int64", new(int64), nil},
		{"NULL into string", new(string), nil},
		{"NULL into bool", new(bool), nil},
		{"text into int64", new(int64), "12"},
		{"real into int64", new(int64), 1.5},
		{"blob into bool", new(bool), []byte{1}},
		{"int into []byte", new([]byte), int64(1)},
		{"int into *string", new(*string), int64(1)},
		{"int into string", new(string), int64(1)},
		{"unknown destination", new(uint8), int64(1)},
		{"non-pointer destination", int64(0), int64(1)},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			if err := assign(c.dest, c.v); !errors.Is(err, errScanType) {
				t.Fatalf("assign: %v, want errScanType", err)
			}
		})
	}

	var (
		i  int64
		n  int
		f  float64
		fi float64
		b  bool
		s  string
		sb string
		bs []byte
		bn = []byte("x")
		bt []byte
		ps *string
		pn = new(string)
		av any
	)
	blob := []byte("blob")
	for _, c := range []struct {
		dest any
		v    driver.Value
	}{
		{&i, int64(-7)}, {&n, int64(42)}, {&f, 2.5}, {&fi, int64(3)}, {&b, int64(1)},
		{&s, "text"}, {&sb, []byte("bytes")}, {&bs, blob}, {&bn, nil}, {&bt, "t"},
		{&ps, "p"}, {&pn, nil}, {&av, int64(9)},
	} {
		if err := assign(c.dest, c.v); err != nil {
			t.Fatalf("assign(%T, %v): %v", c.dest, c.v, err)
		}
	}
	if i != -7 || n != 42 || f != 2.5 || fi != 3 || !b || s != "text" || sb != "bytes" ||
		string(bs) != "blob" || bn != nil || string(bt) != "t" || ps == nil || *ps != "p" || pn != nil || av != int64(9) {
		t.Fatalf("wrong values: %v %v %v %v %v %q %q %q %v %q %v %v %v", i, n, f, fi, b, s, sb, bs, bn, bt, ps, pn, av)
	}
	if &bs[0] != &blob[0] {
		t.Error("a BLOB was copied into []byte; the driver's slice is new for every value and can be kept")
	}
}

// TestRowsKeepBlobs checks what Scan relies on to keep BLOBs without a
// copy: a []byte scanned from one row is not overwritten by the next.
func TestRowsKeepBlobs(t *testing.T) {
	ctx := context.Background()
	c, err := openConn(dsn(filepath.Join(t.TempDir(), "c.db"), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for _, q := range []string{"CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)", "INSERT INTO t VALUES (1, x'0101'), (2, x'0202'), (3, NULL)"} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := c.Query(ctx, "SELECT k, v FROM t WHERE k >= ? ORDER BY k", 1) // an int argument, converted
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var got [][]byte
	for rs.Next() {
		var k int64
		var v []byte
		if err := rs.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || string(got[0]) != "\x01\x01" || string(got[1]) != "\x02\x02" || got[2] != nil {
		t.Fatalf("rows: %q", got)
	}
	var k int64
	if err := rs.Scan(&k); err == nil {
		t.Error("Scan with fewer destinations than columns succeeded")
	}
	if _, err := c.Query(ctx, "SELECT ?", struct{}{}); err == nil {
		t.Error("an argument of no SQL type was accepted")
	}
}

// TestArgsReused checks what reusing a connection's argument slice relies
// on: the driver binds a statement's arguments before Query returns, so a
// statement started while another's rows are open, with other arguments
// in the same slice, changes none of those rows; and no argument (a
// resource's JSON) stays referenced once its statement has started.
func TestArgsReused(t *testing.T) {
	ctx := context.Background()
	c, err := openConn(dsn(filepath.Join(t.TempDir(), "c.db"), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if _, err := c.Exec(ctx, "CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB, s TEXT)"); err != nil {
		t.Fatal(err)
	}
	for k := int64(1); k <= 4; k++ {
		if _, err := c.Exec(ctx, "INSERT INTO t VALUES (?, ?, ?)", k, []byte{byte(k)}, fmt.Sprint("s", k)); err != nil {
			t.Fatal(err)
		}
	}
	for i, v := range c.nv {
		if v.Value != nil {
			t.Errorf("argument %d still referenced after Exec: %v", i+1, v.Value)
		}
	}
	rs, err := c.Query(ctx, "SELECT k FROM t WHERE k >= ? AND s <> ? ORDER BY k", int64(2), "s3")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	// Another statement with other arguments in the same slice, while
	// the first one's rows are still being read.
	rs2, err := c.Query(ctx, "SELECT count(*) FROM t WHERE k < ? AND s <> ?", int64(100), "none")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	if !rs2.Next() || rs2.Scan(&n) != nil || n != 4 {
		t.Fatalf("second query: %d rows counted", n)
	}
	rs2.Close()
	var got []int64
	for rs.Next() {
		var k int64
		if err := rs.Scan(&k); err != nil {
			t.Fatal(err)
		}
		got = append(got, k)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[2 4]" {
		t.Fatalf("first query's rows after the second started: %v, want [2 4]", got)
	}
}
