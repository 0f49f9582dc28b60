package xapi

import (
	"context"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// Field edits shared by the implicit accessors and the explicit messages that
// are plain edits of a field (e.g. VM.add_to_other_config, whose only extra is
// per-key RBAC, enforced by authorize).

func (s *Server) setField(ctx context.Context, c *datamodel.Class, ref any, field string, v any) error {
	r, err := s.existing(c, ref)
	if err != nil {
		return err
	}
	op, err := store.Set(c, r, field, v)
	if err != nil {
		return err
	}
	return s.apply(ctx, op)
}

func (s *Server) mapAdd(ctx context.Context, c *datamodel.Class, ref any, field string, key, v any) error {
	r, err := s.existing(c, ref)
	if err != nil {
		return err
	}
	op, err := store.MapAdd(c, r, field, keyString(key), v)
	if err != nil {
		return err
	}
	return s.apply(ctx, op)
}

func (s *Server) mapRemove(ctx context.Context, c *datamodel.Class, ref any, field string, key any) error {
	r, err := s.existing(c, ref)
	if err != nil {
		return err
	}
	op, err := store.MapRemove(c, r, field, keyString(key))
	if err != nil {
		return err
	}
	return s.apply(ctx, op)
}

func (s *Server) setAdd(ctx context.Context, c *datamodel.Class, ref any, field string, v any) error {
	r, err := s.existing(c, ref)
	if err != nil {
		return err
	}
	op, err := store.SetAdd(c, r, field, v)
	if err != nil {
		return err
	}
	return s.apply(ctx, op)
}

func (s *Server) setRemove(ctx context.Context, c *datamodel.Class, ref any, field string, v any) error {
	r, err := s.existing(c, ref)
	if err != nil {
		return err
	}
	op, err := store.SetRemove(c, r, field, v)
	if err != nil {
		return err
	}
	return s.apply(ctx, op)
}
