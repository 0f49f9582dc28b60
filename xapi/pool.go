package xapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// A pool is one raft cluster: every host holds the whole database, the raft
// leader is the pool master. pool.join hands the joining host's own objects
// to the pool (as xapi does), then the joining host restarts on an empty
// replica that the leader fills (log or snapshot). The leader adds a new
// member as a non-voter and promotes it once it is caught up (see
// leader.go); members write through the leader (store forwarding).

// Restart tells the owner of a Server how to start again (Config.Restart).
type Restart struct {
	// Join, if set, makes the host a member of the pool it names.
	Join *JoinInfo
	// Recover: keep the replica but make it a one-host raft cluster
	// (store.Config.Recover), for pool.emergency_transition_to_master.
	Recover bool
}

// JoinInfo is what a host that joined a pool needs to start as its member.
type JoinInfo struct {
	MasterURL string `json:"master_url"` // API URL of the master at join time
	NodeID    string `json:"node_id"`    // this host's uuid, its raft node id from now on
}

type poolMessages struct {
	UnimplementedPoolMessages
	s *Server
}

// Join is pool.join: this host (master of a one-host pool) becomes a member
// of the pool whose master is at masterAddress.
func (m *poolMessages) Join(ctx context.Context, call *Call, masterAddress, user, pwd string) error {
	return m.s.join(ctx, masterAddress, user, pwd, false)
}

// JoinForce is pool.join_force: like join, without the version checks.
func (m *poolMessages) JoinForce(ctx context.Context, call *Call, masterAddress, user, pwd string) error {
	return m.s.join(ctx, masterAddress, user, pwd, true)
}

// joinRequest is what a joining host sends the master: its objects as create
// batches, remapped onto the pool's networks.
type joinRequest struct {
	HostUUID string     `json:"host_uuid"`
	Ops      []store.Op `json:"ops"`
}

func (s *Server) join(ctx context.Context, masterAddress, user, pwd string, force bool) error {
	if s.cfg.Restart == nil {
		return datamodel.ErrOperationNotAllowed("this host cannot restart to join a pool")
	}
	if s.store.Count(datamodel.HostClass) > 1 {
		return datamodel.ErrJoiningHostCannotBeMasterOfOtherHosts()
	}
	for _, e := range s.store.List(datamodel.VMClass) {
		vm := e.Obj.(*datamodel.VMRecord)
		if vm.IsControlDomain || vm.IsATemplate || vm.IsASnapshot {
			continue
		}
		if vm.PowerState != datamodel.VMPowerStateHalted {
			return datamodel.ErrJoiningHostCannotHaveRunningOrSuspendedVMs()
		}
		if len(vm.CurrentOperations) > 0 {
			return datamodel.ErrJoiningHostCannotHaveVMsWithCurrentOperations()
		}
	}
	url := masterAddress
	if !strings.Contains(url, "://") {
		url = s.peerURL(masterAddress)
	}
	var sess string
	if err := peerCall(ctx, url, "session.login_with_password", &sess, user, pwd, "1.0", "xapi-go pool.join"); err != nil {
		if errors.Is(err, errPeerUnreachable) {
			return datamodel.ErrJoiningHostConnectionFailed()
		}
		return err
	}
	defer func() { _ = peerCall(context.WithoutCancel(ctx), url, "session.logout", nil, sess) }()
	self, _ := s.store.Get(datamodel.HostClass, string(s.hostRef))
	me := self.(*datamodel.HostRecord)
	var hosts map[string]struct {
		UUID            string            `json:"uuid"`
		APIVersionMajor int64             `json:"API_version_major"`
		APIVersionMinor int64             `json:"API_version_minor"`
		SoftwareVersion map[string]string `json:"software_version"`
	}
	if err := peerCall(ctx, url, "host.get_all_records", &hosts, sess); err != nil {
		return err
	}
	for _, h := range hosts {
		if h.UUID == me.UUID {
			return datamodel.ErrOperationNotAllowed("Host cannot join a pool it is already in")
		}
		if force {
			continue
		}
		if h.APIVersionMajor != me.APIVersionMajor || h.APIVersionMinor != me.APIVersionMinor {
			return datamodel.ErrPoolJoiningHostMustHaveSameAPIVersion(
				fmt.Sprintf("%d.%d", me.APIVersionMajor, me.APIVersionMinor), fmt.Sprintf("%d.%d", h.APIVersionMajor, h.APIVersionMinor))
		}
		if h.SoftwareVersion["product_version"] != me.SoftwareVersion["product_version"] {
			return datamodel.ErrPoolJoiningHostMustHaveSameProductVersion()
		}
	}
	var nets map[string]struct {
		Bridge string   `json:"bridge"`
		PIFs   []string `json:"PIFs"`
	}
	if err := peerCall(ctx, url, "network.get_all_records", &nets, sess); err != nil {
		return err
	}
	poolNets := map[string]string{}
	for ref, n := range nets {
		poolNets[n.Bridge] = ref
	}
	req := joinRequest{HostUUID: me.UUID, Ops: s.joinOps(poolNets)}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	rep, err := postInternal(ctx, "", url, pathJoinObjects, body, map[string]string{sessionHeader: sess})
	if err != nil {
		if errors.Is(err, errPeerUnreachable) {
			return datamodel.ErrJoiningHostConnectionFailed()
		}
		return err
	}
	if err := rep.err(); err != nil {
		return err
	}
	var ae AuthExport
	if err := json.Unmarshal(rep.Data, &ae); err != nil {
		return internalf("pool.join: master sent no credentials: %v", err)
	}
	if err := s.auth.adopt(ae); err != nil {
		return internalf("pool.join: adopting the pool's credentials: %v", err)
	}
	s.log.Info("joined a pool; restarting as its member", "master", url)
	info := &JoinInfo{MasterURL: url, NodeID: me.UUID}
	go s.cfg.Restart(Restart{Join: info})
	return nil
}

// ownedObjects returns the refs of the objects that belong to host h: what
// pool.join carries over and pool.eject / host.destroy remove. Networks are
// not included (they are shared by the pool).
func (s *Server) ownedObjects(h datamodel.HostRef) map[string]*datamodel.Class {
	out := map[string]*datamodel.Class{}
	o, ok := s.store.Get(datamodel.HostClass, string(h))
	if !ok {
		return out
	}
	host := o.(*datamodel.HostRecord)
	out[string(h)] = datamodel.HostClass
	add := func(c *datamodel.Class, ref string) {
		if ref != "" && ref != datamodel.NullRef {
			if _, ok := s.store.Get(c, ref); ok {
				out[ref] = c
			}
		}
	}
	add(datamodel.HostMetricsClass, string(host.Metrics))
	// every object of a class with a "host" field naming h
	for _, c := range datamodel.AllClasses() {
		f, ok := c.FieldByName("host")
		if !ok || f.Type.Kind != datamodel.KindRef || f.Type.Of != "host" {
			continue
		}
		for _, e := range s.store.List(c) {
			if r, _ := e.Obj.Field(f.Index).(datamodel.HostRef); r == h {
				out[e.Ref] = c
			}
		}
	}
	for ref, c := range out {
		switch c {
		case datamodel.PIFClass:
			o, _ := s.store.Get(c, ref)
			add(datamodel.PIFMetricsClass, string(o.(*datamodel.PIFRecord).Metrics))
		case datamodel.PBDClass:
			o, _ := s.store.Get(c, ref)
			sr := o.(*datamodel.PBDRecord).SR
			if so, ok := s.store.Get(datamodel.SRClass, string(sr)); ok && !so.(*datamodel.SRRecord).Shared {
				add(datamodel.SRClass, string(sr))
				for _, vdi := range so.(*datamodel.SRRecord).VDIs {
					add(datamodel.VDIClass, string(vdi))
				}
			}
		}
	}
	for _, vm := range host.ResidentVMs {
		vo, ok := s.store.Get(datamodel.VMClass, string(vm))
		if !ok || !vo.(*datamodel.VMRecord).IsControlDomain {
			continue
		}
		rec := vo.(*datamodel.VMRecord)
		add(datamodel.VMClass, string(vm))
		add(datamodel.VMMetricsClass, string(rec.Metrics))
		add(datamodel.VMGuestMetricsClass, string(rec.GuestMetrics))
		for _, c := range rec.Consoles {
			add(datamodel.ConsoleClass, string(c))
		}
	}
	return out
}

// joinOps builds the batch that creates this host's objects in the pool:
// networks are matched by bridge with the pool's (poolNets: bridge → ref) or
// carried over; references to anything not carried over are cleared.
func (s *Server) joinOps(poolNets map[string]string) []store.Op {
	owned := s.ownedObjects(s.hostRef)
	remap := map[string]string{}
	var ops []store.Op
	var addPIFs []store.Op
	for _, e := range s.store.List(datamodel.NetworkClass) {
		n := e.Obj.(*datamodel.NetworkRecord)
		if ref, ok := poolNets[n.Bridge]; ok {
			remap[e.Ref] = ref
			for _, pif := range n.PIFs {
				if _, mine := owned[string(pif)]; mine {
					addPIFs = append(addPIFs, mustSetAdd(datamodel.NetworkClass, ref, "PIFs", pif))
				}
			}
			continue
		}
		used := false
		for _, pif := range n.PIFs {
			if _, mine := owned[string(pif)]; mine {
				used = true
			}
		}
		if used {
			owned[e.Ref] = datamodel.NetworkClass
		}
	}
	for ref, c := range owned {
		o, _ := s.store.Get(c, ref)
		o = o.Clone()
		if hm, ok := o.(*datamodel.HostMetricsRecord); ok {
			// live once the host has restarted as a member and caught up
			hm.Live = false
		}
		for _, f := range c.Fields {
			v := reflect.ValueOf(o.Field(f.Index))
			nv, changed := remapRefs(f.Type, v, func(r string) (string, bool) {
				if to, ok := remap[r]; ok {
					return to, true
				}
				_, ok := owned[r]
				return r, ok
			})
			if changed {
				_ = o.SetField(f.Index, nv.Interface())
			}
		}
		ops = append(ops, store.Create(ref, o))
	}
	return append(ops, addPIFs...)
}

// remapRefs rewrites the references inside a value of type t: keep maps a
// ref to its new value, or reports false to drop it (a single ref becomes
// NULL; set elements and map entries go).
func remapRefs(t *datamodel.Type, v reflect.Value, keep func(string) (string, bool)) (reflect.Value, bool) {
	switch t.Kind {
	case datamodel.KindRef:
		r := v.String()
		if r == "" || r == datamodel.NullRef {
			return v, false
		}
		to, ok := keep(r)
		if !ok {
			to = datamodel.NullRef
		}
		if to == r {
			return v, false
		}
		nv := reflect.New(v.Type()).Elem()
		nv.SetString(to)
		return nv, true
	case datamodel.KindSet:
		if t.Elem.Kind != datamodel.KindRef || v.Len() == 0 {
			return v, false
		}
		nv := reflect.MakeSlice(v.Type(), 0, v.Len())
		changed := false
		for i := range v.Len() {
			r := v.Index(i).String()
			to, ok := keep(r)
			if !ok {
				changed = true
				continue
			}
			if to != r {
				changed = true
			}
			e := reflect.New(v.Type().Elem()).Elem()
			e.SetString(to)
			nv = reflect.Append(nv, e)
		}
		return nv, changed
	case datamodel.KindMap:
		if (t.Key.Kind != datamodel.KindRef && t.Elem.Kind != datamodel.KindRef) || v.Len() == 0 {
			return v, false
		}
		nv := reflect.MakeMapWithSize(v.Type(), v.Len())
		changed := false
		it := v.MapRange()
		for it.Next() {
			k, val := it.Key(), it.Value()
			nk, kc := remapRefs(t.Key, k, keep)
			if t.Key.Kind == datamodel.KindRef && nk.String() == datamodel.NullRef {
				changed = true
				continue
			}
			nval, vc := remapRefs(t.Elem, val, keep)
			changed = changed || kc || vc
			nv.SetMapIndex(nk, nval)
		}
		return nv, changed
	}
	return v, false
}

// serveJoinObjects (master) creates a joining host's objects. The request
// carries the session the joining host opened with the pool admin's
// credentials; the reply carries the pool's credentials.
func (s *Server) serveJoinObjects(_ http.ResponseWriter, r *http.Request, body []byte) (*internalReply, int) {
	if !s.store.IsLeader() {
		return s.notLeaderReply()
	}
	sess, err := s.checkSession(r.Context(), r.Header.Get(sessionHeader))
	if err != nil {
		return errorReply(err), http.StatusForbidden
	}
	if m := s.methods.lookup("pool.join"); m != nil {
		call := &Call{Server: s, Method: m, Session: sess.ref, SessionRec: sess.rec}
		if err := s.authorize(call, m, make([]any, len(m.Params))); err != nil {
			return errorReply(err), http.StatusForbidden
		}
	}
	var req joinRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return errorReply(internalf("join request: %v", err)), http.StatusBadRequest
	}
	if _, ok := s.store.RefByUUID(datamodel.HostClass, req.HostUUID); ok {
		return errorReply(datamodel.ErrOperationNotAllowed("a host with uuid " + req.HostUUID + " is already in the pool")), http.StatusOK
	}
	for _, op := range req.Ops {
		if op.Kind != store.OpCreate && !(op.Kind == store.OpSetAdd && op.Class == datamodel.NetworkClass.Name && op.Field == "PIFs") {
			return errorReply(internalf("join request: unexpected %s on %s", op.Kind, op.Class)), http.StatusBadRequest
		}
	}
	if _, err := s.store.Apply(r.Context(), req.Ops...); err != nil {
		return errorReply(err), http.StatusOK
	}
	b, _ := json.Marshal(s.auth.export())
	s.log.Info("a host joined the pool", "host_uuid", req.HostUUID)
	return &internalReply{Data: b}, http.StatusOK
}

// memberRequest asks the leader to add a joined host's replica.
type memberRequest struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

// serveAddMember (leader) adds a joined host's replica as a non-voter; the
// leader promotes it once it has caught up.
func (s *Server) serveAddMember(_ http.ResponseWriter, r *http.Request, body []byte) (*internalReply, int) {
	if !s.store.IsLeader() {
		return s.notLeaderReply()
	}
	var req memberRequest
	if err := json.Unmarshal(body, &req); err != nil || req.ID == "" || req.Addr == "" {
		return errorReply(internalf("member request: %v", err)), http.StatusBadRequest
	}
	if _, ok := s.store.RefByUUID(datamodel.HostClass, req.ID); !ok {
		return errorReply(datamodel.ErrHostUnknownToMaster(req.ID)), http.StatusOK
	}
	if err := s.store.AddNonvoter(r.Context(), req.ID, req.Addr); err != nil {
		if errors.Is(err, store.ErrNotLeader) {
			return s.notLeaderReply()
		}
		return errorReply(err), http.StatusOK
	}
	s.log.Info("added a replica", "id", req.ID, "addr", req.Addr)
	return &internalReply{}, http.StatusOK
}

// JoinPool is run by the owner of a host that restarts after pool.join, with
// its store opened afresh (no state, no bootstrap) on info.NodeID: it asks
// the pool's leader to add the replica (following redirects to a new
// leader), then waits until the replica has caught up. auth holds the
// credentials adopted from the pool.
func JoinPool(ctx context.Context, st *store.Store, auth *Auth, info JoinInfo) error {
	body, _ := json.Marshal(memberRequest{ID: info.NodeID, Addr: st.LocalAddr()})
	url := info.MasterURL
	for {
		rep, err := postInternal(ctx, auth.PoolSecret(), url, pathAddMember, body, nil)
		var nl *errNotLeaderHere
		switch {
		case err == nil:
			if err := rep.err(); err != nil {
				return err
			}
			if err := st.WaitReady(ctx); err != nil {
				return err
			}
			if _, ok := st.RefByUUID(datamodel.HostClass, info.NodeID); !ok {
				return fmt.Errorf("joined the pool but its database has no host %s", info.NodeID)
			}
			return nil
		case errors.As(err, &nl) && nl.leader != "":
			url = nl.leader
			continue
		case errors.As(err, &nl), errors.Is(err, errPeerUnreachable):
		default:
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("joining the pool at %s: %w (last error: %v)", url, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Eject is pool.eject: host leaves the pool (its objects are removed, its
// replica leaves the raft cluster) and starts again as a one-host pool.
func (m *poolMessages) Eject(ctx context.Context, call *Call, host datamodel.HostRef) error {
	s := m.s
	o, err := s.lookup(datamodel.HostClass, host)
	if err != nil {
		return err
	}
	if host == s.hostRef {
		return datamodel.ErrOperationNotAllowed("Cannot eject the pool master; designate another host first")
	}
	if err := s.assertNoGuests(host); err != nil {
		return err
	}
	rec := o.(*datamodel.HostRecord)
	if err := s.removeMember(ctx, host, rec.UUID); err != nil {
		return err
	}
	// best effort: a host that is down starts as a member of a pool that no
	// longer knows it, and is refused (HOST_UNKNOWN_TO_MASTER) until it is wiped
	if _, err := postInternal(ctx, s.auth.PoolSecret(), s.peerURL(rec.Address), pathEjected, nil, nil); err != nil {
		s.log.Warn("could not tell an ejected host it left the pool", "host", rec.UUID, "err", err)
	}
	return nil
}

// assertNoGuests refuses to remove a host that runs VMs other than its
// control domain.
func (s *Server) assertNoGuests(host datamodel.HostRef) error {
	o, _ := s.store.Get(datamodel.HostClass, string(host))
	for _, vm := range o.(*datamodel.HostRecord).ResidentVMs {
		if vo, ok := s.store.Get(datamodel.VMClass, string(vm)); ok && !vo.(*datamodel.VMRecord).IsControlDomain {
			return datamodel.ErrHostInUse(string(host), "VM", string(vm))
		}
	}
	return nil
}

// removeMember takes host out of the raft cluster and deletes its objects.
func (s *Server) removeMember(ctx context.Context, host datamodel.HostRef, id string) error {
	if err := s.store.RemoveServer(ctx, id); err != nil {
		return err
	}
	owned := s.ownedObjects(host)
	var ops []store.Op
	for _, e := range s.store.List(datamodel.NetworkClass) {
		for _, pif := range e.Obj.(*datamodel.NetworkRecord).PIFs {
			if _, ok := owned[string(pif)]; ok {
				ops = append(ops, mustSetRemove(datamodel.NetworkClass, e.Ref, "PIFs", pif))
			}
		}
	}
	for ref, c := range owned {
		ops = append(ops, store.Delete(c, ref))
	}
	return s.apply(ctx, ops...)
}

func mustSetRemove(c *datamodel.Class, ref, field string, v any) store.Op {
	op, err := store.SetRemove(c, ref, field, v)
	if err != nil {
		panic(err) // field names and types are fixed by the model
	}
	return op
}

// serveEjected (the ejected host) restarts as a one-host pool.
func (s *Server) serveEjected(http.ResponseWriter, *http.Request, []byte) (*internalReply, int) {
	if s.cfg.Restart == nil {
		return errorReply(datamodel.ErrOperationNotAllowed("this host cannot restart")), http.StatusOK
	}
	s.log.Warn("ejected from the pool; restarting as a one-host pool")
	go s.cfg.Restart(Restart{})
	return &internalReply{}, http.StatusOK
}

// DesignateNewMaster is pool.designate_new_master: a raft leadership
// transfer (a non-voting host is promoted first). Calls in flight carry on:
// members forward writes to whichever host leads.
func (m *poolMessages) DesignateNewMaster(ctx context.Context, call *Call, host datamodel.HostRef) error {
	s := m.s
	o, err := s.lookup(datamodel.HostClass, host)
	if err != nil {
		return err
	}
	if host == s.hostRef {
		return nil
	}
	id := o.(*datamodel.HostRecord).UUID
	addr := ""
	ms, err := s.store.Members()
	if err != nil {
		return err
	}
	for _, mb := range ms {
		if mb.ID == id {
			addr = mb.Addr
			if !mb.Voter {
				if err := s.store.AddVoter(ctx, id, addr); err != nil {
					return err
				}
			}
		}
	}
	if addr == "" {
		return datamodel.ErrHostOffline(string(host))
	}
	if err := s.store.TransferLeadership(ctx, id, addr); err != nil {
		return internalf("designate_new_master: %v", err)
	}
	return nil
}

// Destroy is host.destroy: removes a member that is gone for good (it must
// not be live) from the pool's database and raft cluster.
func (m *hostMessages) Destroy(ctx context.Context, call *Call, self datamodel.HostRef) error {
	s := m.s
	o, err := s.lookup(datamodel.HostClass, self)
	if err != nil {
		return err
	}
	if self == s.hostRef {
		return datamodel.ErrHostCannotDestroySelf(string(self))
	}
	rec := o.(*datamodel.HostRecord)
	if s.hostLive(rec) {
		return datamodel.ErrHostIsLive(string(self))
	}
	if err := s.assertNoGuests(self); err != nil {
		return err
	}
	return s.removeMember(ctx, self, rec.UUID)
}

// hostLive reports host_metrics.live of a host.
func (s *Server) hostLive(rec *datamodel.HostRecord) bool {
	if mo, ok := s.store.Get(datamodel.HostMetricsClass, string(rec.Metrics)); ok {
		return mo.(*datamodel.HostMetricsRecord).Live
	}
	return false
}

// EmergencyTransitionToMaster is pool.emergency_transition_to_master, run on
// a member (with a slave_local_login session) whose pool lost its master.
// If a master is reachable with a quorum, leadership is transferred to this
// host (nothing is lost). If no master appears within a few election
// timeouts, the pool has lost its quorum: this host restarts as a one-host
// raft cluster on its own replica (writes it never received are lost) and
// pool.recover_slaves brings the other hosts back.
func (m *poolMessages) EmergencyTransitionToMaster(ctx context.Context, call *Call) error {
	s := m.s
	deadline := time.Now().Add(emergencyWait)
	for {
		if s.store.IsLeader() {
			return nil
		}
		if _, id := s.store.Leader(); id != "" && id != s.store.NodeID() {
			// a master that just died is still known for a moment
			if err := s.askForLeadership(ctx, id); err == nil || !errors.Is(err, errPeerUnreachable) {
				return err
			}
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if s.cfg.Restart == nil {
		return datamodel.ErrOperationNotAllowed("this host cannot restart")
	}
	s.log.Warn("no pool master with a quorum: restarting as the master of a pool of this replica")
	go s.cfg.Restart(Restart{Recover: true})
	return nil
}

// emergencyWait is how long emergency_transition_to_master looks for a
// master before it concludes the quorum is lost.
const emergencyWait = 3 * time.Second

// askForLeadership has the master with raft id leaderID designate this host.
func (s *Server) askForLeadership(ctx context.Context, leaderID string) error {
	url, ok := s.hostURLByID(leaderID)
	if !ok {
		return datamodel.ErrHostOffline(leaderID)
	}
	var sess string
	if err := peerCall(ctx, url, "session.slave_login", &sess, string(s.hostRef), s.auth.PoolSecret()); err != nil {
		return err
	}
	defer func() { _ = peerCall(context.WithoutCancel(ctx), url, "session.logout", nil, sess) }()
	return peerCall(ctx, url, "pool.designate_new_master", nil, sess, string(s.hostRef))
}

// RecoverSlaves is pool.recover_slaves: the hosts of the database that are
// not members of this master's raft cluster (after an emergency transition)
// are told to drop their replicas and join again. It returns the hosts that
// accepted.
func (m *poolMessages) RecoverSlaves(ctx context.Context, call *Call) ([]datamodel.HostRef, error) {
	s := m.s
	members := map[string]bool{}
	ms, err := s.store.Members()
	if err != nil {
		return nil, err
	}
	for _, mb := range ms {
		members[mb.ID] = true
	}
	self, _ := s.store.Get(datamodel.HostClass, string(s.hostRef))
	body, _ := json.Marshal(JoinInfo{MasterURL: s.peerURL(self.(*datamodel.HostRecord).Address)})
	out := []datamodel.HostRef{}
	for _, e := range s.store.List(datamodel.HostClass) {
		h := e.Obj.(*datamodel.HostRecord)
		if members[h.UUID] || datamodel.HostRef(e.Ref) == s.hostRef {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		rep, err := postInternal(cctx, s.auth.PoolSecret(), s.peerURL(h.Address), pathRejoin, body, nil)
		cancel()
		if err == nil {
			err = rep.err()
		}
		if err != nil {
			s.log.Warn("recover_slaves: a host did not accept", "host", h.UUID, "err", err)
			continue
		}
		out = append(out, datamodel.HostRef(e.Ref))
	}
	return out, nil
}

// serveRejoin (a host of the pool's database that is not in the master's
// raft cluster) drops its replica and joins the master that asks.
func (s *Server) serveRejoin(_ http.ResponseWriter, _ *http.Request, body []byte) (*internalReply, int) {
	var info JoinInfo
	if err := json.Unmarshal(body, &info); err != nil || info.MasterURL == "" {
		return errorReply(internalf("rejoin request: %v", err)), http.StatusBadRequest
	}
	if s.cfg.Restart == nil {
		return errorReply(datamodel.ErrOperationNotAllowed("this host cannot restart")), http.StatusOK
	}
	info.NodeID = s.store.NodeID()
	s.log.Warn("told to rejoin the pool from scratch", "master", info.MasterURL)
	go s.cfg.Restart(Restart{Join: &info})
	return &internalReply{}, http.StatusOK
}
