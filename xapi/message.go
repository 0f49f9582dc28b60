package xapi

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// messageLimit is how many messages are kept (xapi's message_limit); when a
// create goes over it, the oldest messages are deleted.
const messageLimit = 10000

// messageMessages implements the messages (alerts) API. Unlike xapi, which
// keeps messages in files outside its database, messages here are rows of the
// replicated store (class message): every host of the pool sees them, and
// event.from reports them as class "message" like any other row.
type messageMessages struct {
	UnimplementedMessageMessages
	s *Server

	trimMu sync.Mutex // serializes this server's enforcement of messageLimit
}

var _ MessageMessages = (*messageMessages)(nil)

// messageObjectClass is the class whose object a message of class cls is about.
func messageObjectClass(cls datamodel.Cls) *datamodel.Class {
	switch cls {
	case datamodel.ClsVM:
		return datamodel.VMClass
	case datamodel.ClsHost:
		return datamodel.HostClass
	case datamodel.ClsSR:
		return datamodel.SRClass
	case datamodel.ClsPool:
		return datamodel.PoolClass
	case datamodel.ClsVMPP:
		return datamodel.VMPPClass
	case datamodel.ClsVMSS:
		return datamodel.VMSSClass
	case datamodel.ClsPVSProxy:
		return datamodel.PVSProxyClass
	case datamodel.ClsVDI:
		return datamodel.VDIClass
	case datamodel.ClsCertificate:
		return datamodel.CertificateClass
	}
	return nil
}

// objectExists reports whether objUUID names an object of the class cls maps to.
func (m *messageMessages) objectExists(cls datamodel.Cls, objUUID string) bool {
	c := messageObjectClass(cls)
	if c == nil {
		return false
	}
	_, ok := m.s.store.RefByUUID(c, objUUID)
	return ok
}

// Create stores a new message about the object objUUID of class cls, dated
// now. As in xapi, the body must be valid UTF-8 (INVALID_VALUE ["UTF8
// expected"]) and the object must exist (UUID_INVALID [cls; obj_uuid]).
func (m *messageMessages) Create(ctx context.Context, call *Call, name string, priority int64, cls datamodel.Cls, objUUID string, body string) (datamodel.MessageRef, error) {
	if !utf8.ValidString(body) {
		return "", datamodel.NewError(datamodel.CodeInvalidValue, "UTF8 expected")
	}
	if !m.objectExists(cls, objUUID) {
		return "", datamodel.ErrUUIDInvalid(string(cls), objUUID)
	}
	rec := &datamodel.MessageRecord{
		Name:      name,
		Priority:  priority,
		Cls:       cls,
		ObjUUID:   objUUID,
		Timestamp: time.Now().UTC(),
		Body:      body,
	}
	ref, err := m.s.createObject(ctx, rec)
	if err != nil {
		return "", err
	}
	m.trim(ctx, ref)
	return datamodel.MessageRef(ref), nil
}

// trim deletes the oldest messages while there are more than messageLimit.
// The message just created (keep) is never a candidate, even when it shares
// its (second-precision) timestamp with older ones. Failing to trim does not
// fail the create: the next create tries again.
func (m *messageMessages) trim(ctx context.Context, keep string) {
	if m.s.store.Count(datamodel.MessageClass) <= messageLimit {
		return
	}
	m.trimMu.Lock()
	defer m.trimMu.Unlock()
	for attempt := 0; attempt < 3; attempt++ {
		entries := m.s.store.List(datamodel.MessageClass)
		excess := len(entries) - messageLimit
		if excess <= 0 {
			return
		}
		candidates := entries[:0:0]
		for _, e := range entries {
			if e.Ref != keep {
				candidates = append(candidates, e)
			}
		}
		sortMessagesOldestFirst(candidates)
		excess = min(excess, len(candidates))
		ops := make([]store.Op, excess)
		for i, e := range candidates[:excess] {
			ops[i] = store.Delete(datamodel.MessageClass, e.Ref)
		}
		err := m.s.apply(ctx, ops...)
		if err == nil {
			return
		}
		// A concurrent destroy (possibly on another host) removed one of
		// them: the whole batch was refused, so look again.
		var derr *datamodel.Error
		if !errors.As(err, &derr) || derr.Code != datamodel.CodeHandleInvalid {
			m.s.log.Warn("message: enforcing the message limit failed", "err", err)
			return
		}
	}
}

// sortMessagesOldestFirst orders message entries by timestamp, then by ref so
// that messages of the same second are ordered deterministically.
func sortMessagesOldestFirst(entries []store.Entry) {
	sort.Slice(entries, func(i, j int) bool {
		ti := entries[i].Obj.(*datamodel.MessageRecord).Timestamp
		tj := entries[j].Obj.(*datamodel.MessageRecord).Timestamp
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return entries[i].Ref < entries[j].Ref
	})
}

// Destroy deletes one message; an unknown ref is HANDLE_INVALID [message; ref].
func (m *messageMessages) Destroy(ctx context.Context, call *Call, self datamodel.MessageRef) error {
	ref, err := m.s.existing(datamodel.MessageClass, self)
	if err != nil {
		return err
	}
	return m.s.apply(ctx, store.Delete(datamodel.MessageClass, ref))
}

// DestroyMany deletes messages as xapi does, which destroys them one after
// the other and stops at the first that does not exist: the messages listed
// before the first unknown (or repeated) ref are deleted, in one batch, and the
// call then fails with HANDLE_INVALID [message; ref].
func (m *messageMessages) DestroyMany(ctx context.Context, call *Call, messages []datamodel.MessageRef) error {
	ops := make([]store.Op, 0, len(messages))
	seen := make(map[datamodel.MessageRef]bool, len(messages))
	var bad error
	for _, r := range messages {
		if _, ok := m.s.store.Get(datamodel.MessageClass, string(r)); !ok || seen[r] {
			bad = datamodel.ErrHandleInvalid(datamodel.MessageClass.Name, string(r))
			break
		}
		seen[r] = true
		ops = append(ops, store.Delete(datamodel.MessageClass, string(r)))
	}
	if err := m.s.apply(ctx, ops...); err != nil {
		return err
	}
	return bad
}

// DestroyAll deletes, in one batch, the messages that pass every filter given
// (logical AND), the filters of xapi's destroy_all:
//
//   - "before": a datetime (xapi's compact form or RFC 3339; no zone = UTC);
//     only messages dated strictly before it;
//   - "after": likewise, only messages dated strictly after it;
//   - "priority": an integer; only messages with exactly this priority.
//
// No filters destroys every message. As in xapi, other keys are ignored (so
// {"cls": …} does not restrict anything). A value that does not parse is
// INVALID_VALUE [key; value] (xapi fails with an internal error).
func (m *messageMessages) DestroyAll(ctx context.Context, call *Call, filters map[string]string) error {
	var before, after *time.Time
	var priority *int64
	for _, k := range []string{"before", "after"} {
		v, ok := filters[k]
		if !ok {
			continue
		}
		t, err := datamodel.ParseDateTime(strings.TrimSpace(v))
		if err != nil {
			return datamodel.ErrInvalidValue(k, v)
		}
		if k == "before" {
			before = &t
		} else {
			after = &t
		}
	}
	if v, ok := filters["priority"]; ok {
		p, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return datamodel.ErrInvalidValue("priority", v)
		}
		priority = &p
	}
	var ops []store.Op
	for _, e := range m.s.store.List(datamodel.MessageClass) {
		rec := e.Obj.(*datamodel.MessageRecord)
		if before != nil && !rec.Timestamp.Before(*before) {
			continue
		}
		if after != nil && !rec.Timestamp.After(*after) {
			continue
		}
		if priority != nil && rec.Priority != *priority {
			continue
		}
		ops = append(ops, store.Delete(datamodel.MessageClass, e.Ref))
	}
	return m.s.apply(ctx, ops...)
}

// messageMap builds a result map from the entries that keep accepts (nil:
// all), copying the records so callers cannot alter the store's.
func messageMap(entries []store.Entry, keep func(*datamodel.MessageRecord) bool) map[datamodel.MessageRef]*datamodel.MessageRecord {
	out := make(map[datamodel.MessageRef]*datamodel.MessageRecord, len(entries))
	for _, e := range entries {
		rec := e.Obj.(*datamodel.MessageRecord)
		if keep != nil && !keep(rec) {
			continue
		}
		c := *rec
		out[datamodel.MessageRef(e.Ref)] = &c
	}
	return out
}

// Get returns the messages about one object dated strictly after since. As in
// xapi, an object that does not exist is UUID_INVALID without parameters.
func (m *messageMessages) Get(ctx context.Context, call *Call, cls datamodel.Cls, objUUID string, since time.Time) (map[datamodel.MessageRef]*datamodel.MessageRecord, error) {
	if !m.objectExists(cls, objUUID) {
		return nil, datamodel.NewError(datamodel.CodeUUIDInvalid)
	}
	return messageMap(m.s.store.List(datamodel.MessageClass), func(r *datamodel.MessageRecord) bool {
		return r.Cls == cls && r.ObjUUID == objUUID && r.Timestamp.After(since)
	}), nil
}

// GetAll returns the refs of all messages.
func (m *messageMessages) GetAll(ctx context.Context, call *Call) ([]datamodel.MessageRef, error) {
	entries := m.s.store.List(datamodel.MessageClass)
	refs := make([]datamodel.MessageRef, len(entries))
	for i, e := range entries {
		refs[i] = datamodel.MessageRef(e.Ref)
	}
	return refs, nil
}

// GetSince returns the messages dated strictly after since (a datetime
// without zone has already been decoded as UTC).
func (m *messageMessages) GetSince(ctx context.Context, call *Call, since time.Time) (map[datamodel.MessageRef]*datamodel.MessageRecord, error) {
	return messageMap(m.s.store.List(datamodel.MessageClass), func(r *datamodel.MessageRecord) bool {
		return r.Timestamp.After(since)
	}), nil
}

// GetRecord returns one message; an unknown ref is HANDLE_INVALID [message; ref].
func (m *messageMessages) GetRecord(ctx context.Context, call *Call, self datamodel.MessageRef) (*datamodel.MessageRecord, error) {
	o, err := m.s.lookup(datamodel.MessageClass, self)
	if err != nil {
		return nil, err
	}
	c := *o.(*datamodel.MessageRecord)
	return &c, nil
}

// GetByUUID returns the message with this uuid, or UUID_INVALID [message; uuid].
func (m *messageMessages) GetByUUID(ctx context.Context, call *Call, uuid string) (datamodel.MessageRef, error) {
	ref, ok := m.s.store.RefByUUID(datamodel.MessageClass, uuid)
	if !ok {
		return "", datamodel.ErrUUIDInvalid(datamodel.MessageClass.Name, uuid)
	}
	return datamodel.MessageRef(ref), nil
}

// GetAllRecords returns every message.
func (m *messageMessages) GetAllRecords(ctx context.Context, call *Call) (map[datamodel.MessageRef]*datamodel.MessageRecord, error) {
	return messageMap(m.s.store.List(datamodel.MessageClass), nil), nil
}

// GetAllRecordsWhere returns the messages matching a where-expression over the
// message fields (name, uuid, priority, cls, obj_uuid, timestamp, body).
func (m *messageMessages) GetAllRecordsWhere(ctx context.Context, call *Call, expr string) (map[datamodel.MessageRef]*datamodel.MessageRecord, error) {
	entries, err := m.s.where(datamodel.MessageClass, expr)
	if err != nil {
		return nil, err
	}
	return messageMap(entries, nil), nil
}
