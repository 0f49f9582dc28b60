package xapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/xapi-go/xapi-go/backends"
	"github.com/xapi-go/xapi-go/datamodel"
)

// PoolMigrate is VM.pool_migrate, run on the host the VM lives on (calls are
// routed there): the destination builds the domain (it takes over the VM's
// memory) and records the VM as resident there, then this host destroys its
// copy. With the simulated hypervisor the guest's state is its power state,
// memory and vCPUs.
func (m *vmMessages) PoolMigrate(ctx context.Context, call *Call, vm datamodel.VMRef, host datamodel.HostRef, options map[string]string) error {
	s := m.s
	o, err := s.lookup(datamodel.VMClass, vm)
	if err != nil {
		return err
	}
	rec := o.(*datamodel.VMRecord)
	if _, err := s.lookup(datamodel.HostClass, host); err != nil {
		return err
	}
	if ps := rec.PowerState; ps != datamodel.VMPowerStateRunning && ps != datamodel.VMPowerStatePaused {
		return datamodel.ErrVMBadPowerState(string(vm), "running", lowerPowerState(ps))
	}
	if host == rec.ResidentOn {
		return nil // already there
	}
	if err := s.checkHost(host); err != nil {
		return err
	}
	if err := s.assertCanBootHere(ctx, string(vm), rec, host); err != nil {
		return err
	}
	ho, _ := s.store.Get(datamodel.HostClass, string(host))
	url := s.peerURL(ho.(*datamodel.HostRecord).Address)
	return s.vmPowerOperation(ctx, call, vm, datamodel.VMOperationsPoolMigrate, backends.OpDestroy, func(ctx context.Context, rec *datamodel.VMRecord) error {
		body, _ := json.Marshal(migrateIn{VM: string(vm), Paused: rec.PowerState == datamodel.VMPowerStatePaused})
		rep, err := postInternal(ctx, s.auth.PoolSecret(), url, pathMigrateIn, body, nil)
		if err != nil {
			return datamodel.ErrHostOffline(string(host))
		}
		if err := rep.err(); err != nil {
			return err
		}
		// see the destination's record of the VM before dropping this
		// copy, or this host would record it halted
		if err := s.store.WaitApplied(ctx, rep.Index); err != nil {
			return err
		}
		return s.cfg.Backend.Destroy(ctx, rec.UUID)
	})
}

func lowerPowerState(ps datamodel.VMPowerState) string {
	return vmPowerState(ps).Lower()
}

// migrateIn asks a destination host to take a VM over.
type migrateIn struct {
	VM     string `json:"vm"`
	Paused bool   `json:"paused"`
}

// serveMigrateIn (the destination of VM.pool_migrate) builds the VM's domain
// here and records the VM as resident here.
func (s *Server) serveMigrateIn(_ http.ResponseWriter, r *http.Request, body []byte) (*internalReply, int) {
	var req migrateIn
	if err := json.Unmarshal(body, &req); err != nil {
		return errorReply(internalf("migrate request: %v", err)), http.StatusBadRequest
	}
	if s.cfg.Backend == nil {
		return errorReply(errNotImplemented("VM.pool_migrate")), http.StatusOK
	}
	o, ok := s.store.Get(datamodel.VMClass, req.VM)
	if !ok {
		return errorReply(datamodel.ErrHandleInvalid(datamodel.VMClass.Name, req.VM)), http.StatusOK
	}
	rec := o.(*datamodel.VMRecord)
	if err := s.vms.begin(req.VM, datamodel.VMOperationsPoolMigrate, "migrate-in"); err != nil {
		return errorReply(err), http.StatusOK
	}
	_, err := s.cfg.Backend.Start(r.Context(), s.domainSpec(rec), req.Paused)
	s.vms.mu.Lock()
	s.vms.endLocked(req.VM)
	if err == nil {
		s.recordStateLocked(r.Context(), req.VM, "")
	}
	s.vms.mu.Unlock()
	if err != nil {
		return errorReply(backendError(nil, req.VM, err)), http.StatusOK
	}
	return &internalReply{Index: s.store.AppliedIndex()}, http.StatusOK
}
