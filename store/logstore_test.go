package store

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestBadgerStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := openBadgerStore(dir, testLogger(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := s.FirstIndex(); f != 0 {
		t.Fatalf("empty first %d", f)
	}
	if _, err := s.Get([]byte("k")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing stable key: %v", err)
	}
	if v, err := s.GetUint64([]byte("n")); v != 0 || err == nil || err.Error() != "not found" {
		t.Fatalf("missing stable uint: %d %v", v, err)
	}
	var logs []*raft.Log
	at := time.Unix(1700000000, 123).UTC()
	for i := uint64(1); i <= 100; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: i / 10, Type: raft.LogCommand, Data: []byte{byte(i)}, Extensions: []byte("x"), AppendedAt: at})
	}
	big := &raft.Log{Index: 101, Term: 11, Type: raft.LogCommand, Data: bytes.Repeat([]byte("b"), 2<<20)}
	if err := s.StoreLogs(append(logs, big)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("term"), 42); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 10); err != nil {
		t.Fatal(err)
	}
	check := func(s *badgerStore) {
		t.Helper()
		if f, _ := s.FirstIndex(); f != 11 {
			t.Fatalf("first %d", f)
		}
		if l, _ := s.LastIndex(); l != 101 {
			t.Fatalf("last %d", l)
		}
		var l raft.Log
		if err := s.GetLog(5, &l); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("deleted log: %v", err)
		}
		if err := s.GetLog(50, &l); err != nil {
			t.Fatal(err)
		}
		if l.Index != 50 || l.Term != 5 || l.Data[0] != 50 || string(l.Extensions) != "x" || !l.AppendedAt.Equal(at) || l.Type != raft.LogCommand {
			t.Fatalf("log 50 read back as %+v", l)
		}
		if err := s.GetLog(101, &l); err != nil || len(l.Data) != 2<<20 {
			t.Fatalf("big log: %v", err)
		}
		if v, err := s.GetUint64([]byte("term")); err != nil || v != 42 {
			t.Fatalf("term %d %v", v, err)
		}
		if v, err := s.Get([]byte("k")); err != nil || string(v) != "v" {
			t.Fatalf("k %q %v", v, err)
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = openBadgerStore(dir, testLogger(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(s)
	// Suffix truncation (a follower dropping conflicting entries).
	if err := s.DeleteRange(90, 101); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.LastIndex(); l != 89 {
		t.Fatalf("last after suffix delete %d", l)
	}
	if err := s.DeleteRange(1, 200); err != nil {
		t.Fatal(err)
	}
	if f, _ := s.FirstIndex(); f != 0 {
		t.Fatalf("first after delete all %d", f)
	}
}

func TestDecodeLogCorrupt(t *testing.T) {
	good := encodeLog(&raft.Log{Index: 1, Term: 2, Data: []byte("abc")})
	for i := range good {
		var l raft.Log
		_ = decodeLog(1, good[:i], &l) // must not panic
	}
}
