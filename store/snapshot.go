package store

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/hashicorp/raft"
	"github.com/xapi-go/xapi-go/datamodel"
)

// Snapshot format: JSON lines. The first line is a header
// {"v":1,"index":N} (N: the last applied index the snapshot reflects); every
// other line is one record {"c":class,"r":ref,"rec":record} with the record as
// datamodel.MarshalRecord writes it (internal fields included). Records are
// grouped by class, classes in name order.
const snapshotVersion = 1

type snapHeader struct {
	Version int    `json:"v"`
	Index   uint64 `json:"index"`
	// Batches are the remembered batch ids, oldest first (see recentBatches).
	Batches []snapBatch `json:"batches,omitempty"`
}

type snapBatch struct {
	ID    batchID  `json:"id"`
	Index uint64   `json:"i"`
	Err   []string `json:"e,omitempty"`
}

type snapRecord struct {
	Class string          `json:"c"`
	Ref   string          `json:"r"`
	Rec   json.RawMessage `json:"rec"`
}

type classSnap struct {
	name    string
	entries []Entry
}

// fsmSnapshot is a point-in-time copy of the tables: the entry slices are
// copied, the records themselves are immutable and shared.
type fsmSnapshot struct {
	index   uint64
	classes []classSnap
	batches []snapBatch
}

// Snapshot captures the tables; raft persists the result concurrently with
// further applies.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := &fsmSnapshot{index: f.applied.Load(), classes: make([]classSnap, 0, len(f.tables)), batches: f.batches.list()}
	for name, t := range f.tables {
		if len(t.entries) == 0 {
			continue
		}
		s.classes = append(s.classes, classSnap{name: name, entries: slices.Clone(t.entries)})
	}
	slices.SortFunc(s.classes, func(a, b classSnap) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	return s, nil
}

// Persist streams the snapshot to sink.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	line, err := json.Marshal(snapHeader{Version: snapshotVersion, Index: s.index, Batches: s.batches})
	if err != nil {
		return err
	}
	line = append(line, '\n')
	if _, err := bw.Write(line); err != nil {
		return err
	}
	for _, cl := range s.classes {
		cname, err := json.Marshal(cl.name)
		if err != nil {
			return err
		}
		for _, e := range cl.entries {
			// A hand-assembled snapRecord: the record is already compact JSON.
			ref, err := json.Marshal(e.Ref)
			if err != nil {
				return err
			}
			line = append(line[:0], `{"c":`...)
			line = append(line, cname...)
			line = append(line, `,"r":`...)
			line = append(line, ref...)
			line = append(line, `,"rec":`...)
			line = append(line, datamodel.MarshalRecord(e.Obj)...)
			line = append(line, "}\n"...)
			if _, err := bw.Write(line); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}

// Release is a no-op: the snapshot holds no resources.
func (s *fsmSnapshot) Release() {}

// Restore replaces the whole state with a snapshot.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	index, tables, batches, err := f.readSnapshot(rc)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.mu.Lock()
	f.tables = tables
	f.tablesIndex = index
	f.mu.Unlock()
	f.batches.reset(batches)
	f.finish(&ChangeSet{Index: index, Reset: true})
	return nil
}

func (f *fsm) readSnapshot(r io.Reader) (uint64, map[string]*table, []snapBatch, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 256<<10))
	var h snapHeader
	if err := dec.Decode(&h); err != nil {
		return 0, nil, nil, fmt.Errorf("header: %w", err)
	}
	if h.Version != snapshotVersion {
		return 0, nil, nil, fmt.Errorf("unsupported snapshot version %d", h.Version)
	}
	tables := map[string]*table{}
	skipped := map[string]int{}
	for {
		var rec snapRecord
		if err := dec.Decode(&rec); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return 0, nil, nil, fmt.Errorf("record: %w", err)
		}
		t := tables[rec.Class]
		if t == nil {
			c, ok := f.lookupClass(rec.Class)
			if !ok {
				// A class this build does not know: keep going so a replica
				// can still start; the records are lost on this replica.
				skipped[rec.Class]++
				continue
			}
			t = newTable(c, 64)
			tables[rec.Class] = t
		}
		o, err := datamodel.UnmarshalRecord(t.class, rec.Rec)
		if err != nil {
			return 0, nil, nil, fmt.Errorf("%s %s: %w", rec.Class, rec.Ref, err)
		}
		if _, dup := t.pos[rec.Ref]; dup {
			return 0, nil, nil, fmt.Errorf("%s %s: duplicate ref", rec.Class, rec.Ref)
		}
		t.add(rec.Ref, o)
	}
	for c, n := range skipped {
		f.log.Warn("snapshot has records of an unknown class; skipped", "class", c, "records", n)
	}
	return h.Index, tables, h.Batches, nil
}
