package xapi

import (
	"context"

	"github.com/xapi-go/xapi-go/datamodel"
)

// taskMessages implements the explicit messages of class task built so far.
type taskMessages struct {
	UnimplementedTaskMessages
	s *Server
}

func (m *taskMessages) SetOtherConfig(ctx context.Context, call *Call, self datamodel.TaskRef, value map[string]string) error {
	return m.s.setField(ctx, datamodel.TaskClass, self, "other_config", value)
}

func (m *taskMessages) AddToOtherConfig(ctx context.Context, call *Call, self datamodel.TaskRef, key, value string) error {
	return m.s.mapAdd(ctx, datamodel.TaskClass, self, "other_config", key, value)
}

func (m *taskMessages) RemoveFromOtherConfig(ctx context.Context, call *Call, self datamodel.TaskRef, key string) error {
	return m.s.mapRemove(ctx, datamodel.TaskClass, self, "other_config", key)
}
