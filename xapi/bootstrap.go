package xapi

import (
	"context"
	"fmt"
	"strings"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// bootstrap creates this host's objects on first start (a one-host pool whose
// master is this host) and finds them again on later starts.
func (s *Server) bootstrap(ctx context.Context) error {
	if pools := s.store.List(datamodel.PoolClass); len(pools) > 0 {
		s.poolRef = datamodel.PoolRef(pools[0].Ref)
		// this host is the one whose uuid is the raft node id; a database
		// made before hosts were named so has one host, the master
		if ref, ok := s.store.RefByUUID(datamodel.HostClass, s.store.NodeID()); ok {
			s.hostRef = datamodel.HostRef(ref)
		} else if s.store.Count(datamodel.HostClass) == 1 {
			s.hostRef = pools[0].Obj.(*datamodel.PoolRecord).Master
		} else {
			return fmt.Errorf("the pool's database has no host with uuid %s (this host's raft node id)", s.store.NodeID())
		}
		return s.ensureLocalSubjects(ctx)
	}
	b := &batchBuilder{}
	s.buildHostObjects(b)
	if _, err := s.store.Apply(ctx, b.ops...); err != nil {
		return err
	}
	return s.ensureLocalSubjects(ctx)
}

// batchBuilder accumulates Create ops with fresh refs and uuids.
type batchBuilder struct {
	ops []store.Op
}

func (b *batchBuilder) add(o datamodel.Object) string {
	c := o.ClassInfo()
	if c.UUIDField >= 0 {
		_ = o.SetField(c.UUIDField, datamodel.NewUUID())
	}
	ref := datamodel.NewRef()
	b.ops = append(b.ops, store.Create(ref, o))
	return ref
}

// ensureLocalSubjects gives every local user (see Auth) a subject object with its role.
func (s *Server) ensureLocalSubjects(ctx context.Context) error {
	roles := map[string]datamodel.RoleRef{}
	for _, e := range s.store.List(datamodel.RoleClass) {
		roles[e.Obj.(*datamodel.RoleRecord).NameLabel] = datamodel.RoleRef(e.Ref)
	}
	var ops []store.Op
	for _, u := range s.auth.Users() {
		want := []datamodel.RoleRef{roles[u.Role]}
		if ref, ok := s.subjectFor(u.Name); ok {
			o, _ := s.store.Get(datamodel.SubjectClass, string(ref))
			cur := o.(*datamodel.SubjectRecord).Roles
			if len(cur) == 1 && cur[0] == want[0] {
				continue
			}
			op, err := store.Set(datamodel.SubjectClass, string(ref), "roles", want)
			if err != nil {
				return err
			}
			ops = append(ops, op)
			continue
		}
		rec := datamodel.NewSubjectRecord()
		rec.UUID = datamodel.NewUUID()
		rec.SubjectIdentifier = localSubjectID(u.Name)
		rec.OtherConfig = map[string]string{"subject-name": u.Name, "subject-is-group": "false", "subject-account-disabled": "false"}
		rec.Roles = want
		ops = append(ops, store.Create(datamodel.NewRef(), rec))
	}
	if len(ops) == 0 {
		return nil
	}
	_, err := s.store.Apply(ctx, ops...)
	return err
}

// hostUUIDFor is the uuid of a new host: its raft node id when that is a
// uuid (so every replica can tell which host object is its own), else a new
// one (a single host started with a name as its node id).
func hostUUIDFor(nodeID string) string {
	if datamodel.IsUUID(nodeID) {
		return strings.ToLower(nodeID)
	}
	return datamodel.NewUUID()
}
