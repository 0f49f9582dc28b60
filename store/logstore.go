package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/hashicorp/raft"
)

// badgerStore is the raft LogStore and StableStore on badger. Every write is a
// badger transaction committed with SyncWrites, so it is on disk before raft
// is told it is stored.
//
// Keys: 'l' + 8-byte big-endian index for log entries, 's' + key for the
// stable store. A log entry is encoded as
// version(1) type(1) term(uvarint) appended_at_unix_nano(varint)
// len(data)(uvarint) data len(extensions)(uvarint) extensions.
type badgerStore struct {
	db  *badger.DB
	log *slog.Logger

	mu          sync.Mutex // guards first and last
	first, last uint64

	stop chan struct{}
	done chan struct{}
}

var (
	_ raft.LogStore    = (*badgerStore)(nil)
	_ raft.StableStore = (*badgerStore)(nil)

	// errNotFound is what raft expects (by its text) from a StableStore
	// asked for a missing key.
	errNotFound = errors.New("not found")
)

const (
	prefixLog    = 'l'
	prefixStable = 's'
	logFormatV1  = 1
)

// badgerValueThreshold keeps large log entries in badger's value log so that a
// transaction of many entries does not hit badger's batch size limit.
const badgerValueThreshold = 64 << 10

// openBadgerStore opens the raft log and stable store. The log is short-lived
// (entries go once a snapshot covers them), so it is tuned for a small
// resident footprint rather than disk size: 8 MiB memtables, 1 MiB base
// tables (badger's table builders keep buffers twice a table's size) and no
// block compression (its buffers cost more memory than the disk it saves).
func openBadgerStore(dir string, log *slog.Logger, gcInterval time.Duration) (*badgerStore, error) {
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithLogger(badgerLogger{log}).
		WithNumVersionsToKeep(1).
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithCompression(options.None).
		WithBaseTableSize(1 << 20).
		WithValueThreshold(badgerValueThreshold).
		WithValueLogFileSize(128 << 20).
		WithBlockCacheSize(16 << 20).
		WithIndexCacheSize(8 << 20).
		WithNumCompactors(2).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(8).
		WithDetectConflicts(false).
		WithMetricsEnabled(false)
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open badger at %s: %w", dir, err)
	}
	s := &badgerStore{db: db, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	if err := s.loadBounds(); err != nil {
		_ = db.Close()
		return nil, err
	}
	go s.gcLoop(gcInterval)
	return s, nil
}

func (s *badgerStore) gcLoop(every time.Duration) {
	defer close(s.done)
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			for s.db.RunValueLogGC(0.5) == nil {
				select {
				case <-s.stop:
					return
				default:
				}
			}
		}
	}
}

// Close stops the value log collector and closes badger.
func (s *badgerStore) Close() error {
	close(s.stop)
	<-s.done
	return s.db.Close()
}

func logKey(i uint64) []byte {
	var k [9]byte
	k[0] = prefixLog
	binary.BigEndian.PutUint64(k[1:], i)
	return k[:]
}

func (s *badgerStore) loadBounds() error {
	first, last, err := s.scanBounds()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.first, s.last = first, last
	s.mu.Unlock()
	return nil
}

func (s *badgerStore) scanBounds() (first, last uint64, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte{prefixLog}
		it := txn.NewIterator(opts)
		it.Seek(logKey(0))
		if it.Valid() {
			first = binary.BigEndian.Uint64(it.Item().Key()[1:])
		}
		it.Close()
		opts.Reverse = true
		it = txn.NewIterator(opts)
		it.Seek(logKey(^uint64(0)))
		if it.Valid() {
			last = binary.BigEndian.Uint64(it.Item().Key()[1:])
		}
		it.Close()
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("scan raft log bounds: %w", err)
	}
	return first, last, nil
}

// FirstIndex returns the first index stored, 0 if none.
func (s *badgerStore) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first, nil
}

// LastIndex returns the last index stored, 0 if none.
func (s *badgerStore) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, nil
}

// GetLog reads the entry at index.
func (s *badgerStore) GetLog(index uint64, l *raft.Log) error {
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(logKey(index))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return decodeLog(index, v, l) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return raft.ErrLogNotFound
	}
	return err
}

func encodeLog(l *raft.Log) []byte {
	b := make([]byte, 0, 2+3*binary.MaxVarintLen64+len(l.Data)+len(l.Extensions)+binary.MaxVarintLen64)
	b = append(b, logFormatV1, byte(l.Type))
	b = binary.AppendUvarint(b, l.Term)
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	b = binary.AppendVarint(b, at)
	b = binary.AppendUvarint(b, uint64(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.AppendUvarint(b, uint64(len(l.Extensions)))
	return append(b, l.Extensions...)
}

func decodeLog(index uint64, b []byte, l *raft.Log) error {
	bad := func(what string) error { return fmt.Errorf("raft log entry %d: corrupt %s", index, what) }
	if len(b) < 2 || b[0] != logFormatV1 {
		return bad("header")
	}
	*l = raft.Log{Index: index, Type: raft.LogType(b[1])}
	b = b[2:]
	term, n := binary.Uvarint(b)
	if n <= 0 {
		return bad("term")
	}
	l.Term, b = term, b[n:]
	at, n := binary.Varint(b)
	if n <= 0 {
		return bad("time")
	}
	if at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	b = b[n:]
	bytesField := func(what string) ([]byte, error) {
		ln, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < ln {
			return nil, bad(what)
		}
		out := b[n : n+int(ln)]
		b = b[n+int(ln):]
		if ln == 0 {
			return nil, nil
		}
		return append([]byte(nil), out...), nil
	}
	var err error
	if l.Data, err = bytesField("data"); err != nil {
		return err
	}
	l.Extensions, err = bytesField("extensions")
	return err
}

// StoreLog stores one entry.
func (s *badgerStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs stores entries durably: one synced transaction, or several if the
// entries exceed badger's transaction size.
func (s *badgerStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	for _, l := range logs {
		e := badger.NewEntry(logKey(l.Index), encodeLog(l))
		err := txn.SetEntry(e)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err = txn.Commit(); err != nil {
				return fmt.Errorf("store raft logs: %w", err)
			}
			txn = s.db.NewTransaction(true)
			err = txn.SetEntry(e)
		}
		if err != nil {
			return fmt.Errorf("store raft log %d: %w", l.Index, err)
		}
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("store raft logs: %w", err)
	}
	s.mu.Lock()
	for _, l := range logs {
		if s.first == 0 || l.Index < s.first {
			s.first = l.Index
		}
		if l.Index > s.last {
			s.last = l.Index
		}
	}
	s.mu.Unlock()
	return nil
}

// DeleteRange deletes the entries min..max inclusive.
func (s *badgerStore) DeleteRange(lo, hi uint64) error {
	s.mu.Lock()
	first, last := s.first, s.last
	s.mu.Unlock()
	if first == 0 || hi < first || lo > last {
		return nil
	}
	lo, hi = max(lo, first), min(hi, last)
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	for i := lo; i <= hi; i++ {
		k := logKey(i)
		err := txn.Delete(k)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err = txn.Commit(); err != nil {
				return fmt.Errorf("delete raft logs: %w", err)
			}
			txn = s.db.NewTransaction(true)
			err = txn.Delete(k)
		}
		if err != nil {
			return fmt.Errorf("delete raft log %d: %w", i, err)
		}
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("delete raft logs: %w", err)
	}
	return s.loadBounds()
}

func stableKey(k []byte) []byte {
	return append([]byte{prefixStable}, k...)
}

// Set stores a stable value.
func (s *badgerStore) Set(key, val []byte) error {
	return s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(stableKey(key), append([]byte(nil), val...))
	})
}

// Get reads a stable value; a missing key is errNotFound.
func (s *badgerStore) Get(key []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(stableKey(key))
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, errNotFound
	}
	return out, err
}

// SetUint64 stores a stable integer.
func (s *badgerStore) SetUint64(key []byte, val uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], val)
	return s.Set(key, b[:])
}

// GetUint64 reads a stable integer; a missing key is 0 and errNotFound.
func (s *badgerStore) GetUint64(key []byte) (uint64, error) {
	b, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("stable key %q: bad length %d", key, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}
