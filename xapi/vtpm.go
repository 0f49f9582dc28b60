package xapi

import (
	"context"
	"strconv"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// vtpmMessages implements VTPM.create and VTPM.destroy (xapi_vtpm.ml).
type vtpmMessages struct {
	UnimplementedVTPMMessages
	s *Server
}

// vtpmCreateError is xapi's check of the VM operation create_vtpm, in its
// order: OPERATION_BLOCKED, VM_BAD_POWER_STATE (halted only),
// OTHER_OPERATION_IN_PROGRESS, VM_IS_TEMPLATE, VM_IS_SNAPSHOT,
// VTPM_MAX_AMOUNT_REACHED [count] (one VTPM per VM); then the pool's
// licence: FEATURE_RESTRICTED [restrict_vtpm]. The caller holds s.vms.mu.
func (s *Server) vtpmCreateError(ref string, vm *datamodel.VMRecord) error {
	op := datamodel.VMOperationsCreateVTPM
	if reason, ok := vm.BlockedOperations[op]; ok {
		return datamodel.ErrOperationBlocked(ref, reason)
	}
	if vm.PowerState != datamodel.VMPowerStateHalted {
		return datamodel.ErrVMBadPowerState(ref, "halted", vmPowerState(vm.PowerState).Lower())
	}
	if b, ok := s.vms.busy[ref]; ok {
		return datamodel.ErrOtherOperationInProgress(datamodel.VMClass.Name, ref, string(b.op), b.ref)
	}
	if vm.IsATemplate && !vm.IsASnapshot {
		return datamodel.NewError(datamodel.CodeVMIsTemplate, ref, string(op))
	}
	if vm.IsASnapshot {
		return datamodel.ErrVMIsSnapshot(ref, string(op))
	}
	if vm.IsControlDomain {
		return datamodel.ErrOperationNotAllowed("This operation is not allowed on a control domain")
	}
	if len(vm.VTPMs) > 0 {
		return datamodel.ErrVTPMMaxAmountReached(strconv.Itoa(len(vm.VTPMs)))
	}
	// xapi refuses unless the licence says restrict_vtpm=false; a pool whose
	// restrictions do not mention VTPMs at all is taken as allowing them.
	for _, e := range s.store.List(datamodel.PoolClass) {
		if e.Obj.(*datamodel.PoolRecord).Restrictions["restrict_vtpm"] == "true" {
			return datamodel.NewError(datamodel.CodeFeatureRestricted, "restrict_vtpm")
		}
	}
	return nil
}

// Create implements VTPM.create: for a halted VM without a VTPM, a VTPM
// persisted by xapi whose contents are a new empty secret; destroy is its
// allowed operation while the VM is halted. The VTPM joins VM.VTPMs in the
// same batch.
func (m *vtpmMessages) Create(ctx context.Context, call *Call, vm datamodel.VMRef, isUnique bool) (datamodel.VTPMRef, error) {
	s := m.s
	ref := datamodel.NewRef()
	err := s.deviceWrite(ctx, func() ([]store.Op, error) {
		o, err := s.lookup(datamodel.VMClass, vm)
		if err != nil {
			return nil, err
		}
		if err := s.vtpmCreateError(string(vm), o.(*datamodel.VMRecord)); err != nil {
			return nil, err
		}
		secret := datamodel.NewSecretRecord()
		secret.UUID = datamodel.NewUUID()
		secret.Value = ""
		secret.OtherConfig = map[string]string{}
		secretRef := datamodel.NewRef()
		r := datamodel.NewVTPMRecord()
		r.UUID = datamodel.NewUUID()
		r.VM = vm
		r.Backend = datamodel.VMRef(datamodel.NullRef)
		r.PersistenceBackend = datamodel.PersistenceBackendXapi
		r.IsUnique = isUnique
		r.IsProtected = false
		r.Contents = datamodel.SecretRef(secretRef)
		r.CurrentOperations = map[string]datamodel.VTPMOperations{}
		r.AllowedOperations = []datamodel.VTPMOperations{datamodel.VTPMOperationsDestroy}
		return []store.Op{
			store.Create(secretRef, secret),
			store.Create(ref, r),
			mustSetAdd(datamodel.VMClass, string(vm), "VTPMs", datamodel.VTPMRef(ref)),
		}, nil
	})
	if err != nil {
		return "", err
	}
	return datamodel.VTPMRef(ref), nil
}

// Destroy implements VTPM.destroy: the VM must be halted or suspended
// (VM_BAD_POWER_STATE [vm, "halted;suspended", actual]); the VTPM, its
// contents secret and its place in VM.VTPMs go in one batch.
func (m *vtpmMessages) Destroy(ctx context.Context, call *Call, self datamodel.VTPMRef) error {
	s := m.s
	return s.deviceWrite(ctx, func() ([]store.Op, error) {
		o, err := s.lookup(datamodel.VTPMClass, self)
		if err != nil {
			return nil, err
		}
		r := o.(*datamodel.VTPMRecord)
		if vo, ok := s.store.Get(datamodel.VMClass, string(r.VM)); ok {
			vm := vo.(*datamodel.VMRecord)
			if vm.PowerState != datamodel.VMPowerStateHalted && vm.PowerState != datamodel.VMPowerStateSuspended {
				return nil, datamodel.ErrVMBadPowerState(string(r.VM), "halted;suspended", vmPowerState(vm.PowerState).Lower())
			}
		}
		b := &refBatch{s: s}
		b.setRemove(datamodel.VMClass, string(r.VM), "VTPMs", self)
		b.del(datamodel.SecretClass, string(r.Contents))
		b.del(datamodel.VTPMClass, string(self))
		return b.ops, nil
	})
}
