package xapi

import (
	"context"
	"encoding/json"
	"errors"
	"sync"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/rpc"
)

// A call for a VM runs on the host the VM lives on: the master forwards it to
// that host as the same XenAPI call with a pool session (session.slave_login),
// and the host runs it through its own dispatcher. VM.start and VM.resume
// place the VM first and are forwarded as VM.start_on / VM.resume_on.

// route says where a call runs: on host, as method with params (wire values,
// without the session).
type route struct {
	host   datamodel.HostRef
	method string
	params []any
}

// residentOps are the messages that act on a VM's running domain.
var residentOps = map[string]bool{
	"VM.clean_shutdown": true, "VM.hard_shutdown": true, "VM.shutdown": true,
	"VM.clean_reboot": true, "VM.hard_reboot": true, "VM.suspend": true,
	"VM.pause": true, "VM.unpause": true, "VM.set_memory_dynamic_range": true,
	"VM.set_VCPUs_number_live": true, "VM.set_memory_target_live": true,
	"VM.pool_migrate": true,
}

// deviceOps act on a device of a VM's running domain.
var deviceOps = map[string]*datamodel.Class{
	"VBD.plug": datamodel.VBDClass, "VBD.unplug": datamodel.VBDClass, "VBD.unplug_force": datamodel.VBDClass,
	"VIF.plug": datamodel.VIFClass, "VIF.unplug": datamodel.VIFClass, "VIF.unplug_force": datamodel.VIFClass,
}

// routeFor returns where call must run, or nil to run it here.
func (s *Server) routeFor(ctx context.Context, call *Call, args []any) (*route, error) {
	if s.cfg.Backend == nil || call.raw == nil || s.store.Count(datamodel.HostClass) < 2 {
		return nil, nil
	}
	name := call.Method.Name
	vmOf := func(ref any) (*datamodel.VMRecord, bool) {
		r, _ := ref.(datamodel.VMRef)
		o, ok := s.store.Get(datamodel.VMClass, string(r))
		if !ok {
			return nil, false
		}
		return o.(*datamodel.VMRecord), true
	}
	here := func(h datamodel.HostRef) bool {
		return h == s.hostRef || h == "" || h == datamodel.NullRef
	}
	switch {
	case name == "VM.start_on" || name == "VM.resume_on" || name == "VM.assert_can_boot_here":
		h, _ := args[1].(datamodel.HostRef)
		if here(h) || (name == "VM.assert_can_boot_here") {
			return nil, nil
		}
		return &route{host: h, method: name, params: call.raw}, nil
	case name == "VM.start":
		rec, ok := vmOf(args[0])
		if !ok || rec.PowerState != datamodel.VMPowerStateHalted {
			return nil, nil // the local code reports the error
		}
		h, err := s.placeVM(ctx, string(args[0].(datamodel.VMRef)), rec)
		if err != nil || here(h) {
			return nil, err
		}
		return &route{host: h, method: "VM.start_on", params: []any{call.raw[0], string(h), call.raw[1], call.raw[2]}}, nil
	case name == "VM.resume":
		rec, ok := vmOf(args[0])
		if !ok || rec.PowerState != datamodel.VMPowerStateSuspended {
			return nil, nil
		}
		h := s.suspendHost(rec)
		if here(h) {
			return nil, nil
		}
		return &route{host: h, method: "VM.resume_on", params: []any{call.raw[0], string(h), call.raw[1], call.raw[2]}}, nil
	case residentOps[name]:
		rec, ok := vmOf(args[0])
		if !ok || here(rec.ResidentOn) {
			return nil, nil
		}
		return &route{host: rec.ResidentOn, method: name, params: call.raw}, nil
	case deviceOps[name] != nil:
		c := deviceOps[name]
		ref, _ := call.raw[0].(string)
		o, ok := s.store.Get(c, ref)
		if !ok {
			return nil, nil
		}
		var vm datamodel.VMRef
		switch d := o.(type) {
		case *datamodel.VBDRecord:
			vm = d.VM
		case *datamodel.VIFRecord:
			vm = d.VM
		}
		rec, ok := vmOf(vm)
		if !ok || here(rec.ResidentOn) {
			return nil, nil
		}
		return &route{host: rec.ResidentOn, method: name, params: call.raw}, nil
	}
	return nil, nil
}

// suspendHost is the host that holds a suspended VM's image: the host of the
// suspend VDI's SR (a local SR has one PBD).
func (s *Server) suspendHost(rec *datamodel.VMRecord) datamodel.HostRef {
	vo, ok := s.store.Get(datamodel.VDIClass, string(rec.SuspendVDI))
	if !ok {
		return ""
	}
	so, ok := s.store.Get(datamodel.SRClass, string(vo.(*datamodel.VDIRecord).SR))
	if !ok || so.(*datamodel.SRRecord).Shared {
		return ""
	}
	for _, pbd := range so.(*datamodel.SRRecord).PBDs {
		if p, ok := s.store.Get(datamodel.PBDClass, string(pbd)); ok {
			return p.(*datamodel.PBDRecord).Host
		}
	}
	return ""
}

// placeVM chooses the host a halted VM starts on. Policy: among the enabled,
// live hosts that see all of the VM's disks and have the memory, its
// affinity host if it is one of them, else the one with the most free
// memory (this host on a tie). None: the error the best host gave.
func (s *Server) placeVM(ctx context.Context, ref string, rec *datamodel.VMRecord) (datamodel.HostRef, error) {
	var best datamodel.HostRef
	var bestFree int64 = -1
	var firstErr error
	for _, e := range s.store.List(datamodel.HostClass) {
		h := datamodel.HostRef(e.Ref)
		if err := s.assertCanBootHere(ctx, ref, rec, h); err != nil {
			if firstErr == nil || h == s.hostRef {
				firstErr = err
			}
			continue
		}
		if h == rec.Affinity {
			return h, nil
		}
		free := s.hostFreeMemory(ctx, h)
		if free > bestFree || (free == bestFree && h == s.hostRef) {
			best, bestFree = h, free
		}
	}
	if bestFree < 0 {
		if firstErr == nil {
			firstErr = datamodel.ErrNoHostsAvailable()
		}
		return "", firstErr
	}
	return best, nil
}

// hostFreeMemory is the memory free for new VMs on host: the backend's
// figure here, host_metrics.memory_free for other hosts.
func (s *Server) hostFreeMemory(ctx context.Context, host datamodel.HostRef) int64 {
	if host == s.hostRef && s.cfg.Backend != nil {
		if info, err := s.cfg.Backend.Host(ctx); err == nil {
			return info.MemoryFree
		}
		return 0
	}
	o, ok := s.store.Get(datamodel.HostClass, string(host))
	if !ok {
		return 0
	}
	if mo, ok := s.store.Get(datamodel.HostMetricsClass, string(o.(*datamodel.HostRecord).Metrics)); ok {
		return mo.(*datamodel.HostMetricsRecord).MemoryFree
	}
	return 0
}

// poolSessions caches one pool session per host for forwarded calls.
type poolSessions struct {
	mu   sync.Mutex
	refs map[datamodel.HostRef]string
}

// forward runs a routed call on its host and returns the result decoded as
// the method's result type. A host that cannot be reached is HOST_OFFLINE.
func (s *Server) forward(ctx context.Context, m *Method, r *route) (any, error) {
	o, ok := s.store.Get(datamodel.HostClass, string(r.host))
	if !ok {
		return nil, datamodel.ErrHandleInvalid(datamodel.HostClass.Name, string(r.host))
	}
	url := s.peerURL(o.(*datamodel.HostRecord).Address)
	var raw json.RawMessage
	for attempt := 0; ; attempt++ {
		sess, err := s.poolSessionOn(ctx, r.host, url, attempt > 0)
		if err != nil {
			return nil, err
		}
		err = peerCallAt(ctx, url, s.store.AppliedIndex(), r.method, &raw, append([]any{sess}, r.params...)...)
		var de *datamodel.Error
		if attempt == 0 && errors.As(err, &de) && de.Code == datamodel.CodeSessionInvalid {
			continue
		}
		if errors.Is(err, errPeerUnreachable) {
			return nil, datamodel.ErrHostOffline(string(r.host))
		}
		if err != nil {
			return nil, err
		}
		break
	}
	if m.Result == nil {
		return nil, nil
	}
	// decode the JSON result as the RPC layer decodes parameters
	c, _, err := rpc.DecodeJSONCall(append(append([]byte(`{"method":"r","params":[`), raw...), "]}"...))
	if err != nil || len(c.Params) != 1 {
		return nil, internalf("%s on %s: bad result: %v", r.method, r.host, err)
	}
	return m.Result.Decode(c.Params[0])
}

// poolSessionOn returns a pool session on host (a new one if renew).
func (s *Server) poolSessionOn(ctx context.Context, host datamodel.HostRef, url string, renew bool) (string, error) {
	s.peerSessions.mu.Lock()
	ref, ok := s.peerSessions.refs[host]
	s.peerSessions.mu.Unlock()
	if ok && !renew {
		return ref, nil
	}
	if err := peerCall(ctx, url, "session.slave_login", &ref, string(host), s.auth.PoolSecret()); err != nil {
		if errors.Is(err, errPeerUnreachable) {
			return "", datamodel.ErrHostOffline(string(host))
		}
		return "", err
	}
	s.peerSessions.mu.Lock()
	if s.peerSessions.refs == nil {
		s.peerSessions.refs = map[datamodel.HostRef]string{}
	}
	s.peerSessions.refs[host] = ref
	s.peerSessions.mu.Unlock()
	return ref, nil
}
