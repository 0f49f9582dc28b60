package xapi

import (
	"context"

	"github.com/xapi-go/xapi-go/datamodel"
)

// vmMessages implements the explicit messages of class VM built so far.
type vmMessages struct {
	UnimplementedVMMessages
	s *Server
}

func (m *vmMessages) SetOtherConfig(ctx context.Context, call *Call, self datamodel.VMRef, value map[string]string) error {
	return m.s.setField(ctx, datamodel.VMClass, self, "other_config", value)
}

func (m *vmMessages) AddToOtherConfig(ctx context.Context, call *Call, self datamodel.VMRef, key, value string) error {
	return m.s.mapAdd(ctx, datamodel.VMClass, self, "other_config", key, value)
}

func (m *vmMessages) RemoveFromOtherConfig(ctx context.Context, call *Call, self datamodel.VMRef, key string) error {
	return m.s.mapRemove(ctx, datamodel.VMClass, self, "other_config", key)
}
