package xapi

import "github.com/xapi-go/xapi-go/datamodel"

// builtinImpl wires the hand-written message implementations; everything not
// built yet answers NOT_IMPLEMENTED through the generated Unimplemented types.
func (s *Server) builtinImpl() *Impl {
	impl := NewUnimplemented()
	impl.Session = &sessionMessages{s: s}
	impl.Auth = &authMessages{}
	impl.VM = &vmMessages{s: s}
	impl.Host = &hostMessages{s: s}
	impl.Pool = &poolMessages{s: s}
	impl.Task = &taskMessages{s: s}
	impl.Event = &eventMessages{s: s}
	impl.Message = &messageMessages{s: s}
	impl.VBD = &vbdMessages{s: s}
	impl.VIF = &vifMessages{s: s}
	impl.VDI = &vdiMessages{s: s}
	impl.GPUGroup = &gpuGroupMessages{s: s}
	impl.USBGroup = &usbGroupMessages{s: s}
	impl.Blob = &blobMessages{s: s}
	impl.VTPM = &vtpmMessages{s: s}
	impl.VLAN = &vlanMessages{s: s}
	impl.Tunnel = &tunnelMessages{s: s}
	return impl
}

func init() {
	destroyHooks[datamodel.VMClass] = destroyVM
	createHooks[datamodel.VBDClass] = createVBD
	destroyHooks[datamodel.VBDClass] = destroyVBD
	createHooks[datamodel.VIFClass] = createVIF
	destroyHooks[datamodel.VIFClass] = destroyVIF
	createHooks[datamodel.VDIClass] = createVDI
	destroyHooks[datamodel.VDIClass] = destroyVDI
}
