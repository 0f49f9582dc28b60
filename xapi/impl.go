package xapi

// builtinImpl wires the hand-written message implementations; everything not
// built yet answers NOT_IMPLEMENTED through the generated Unimplemented types.
func (s *Server) builtinImpl() *Impl {
	impl := NewUnimplemented()
	impl.Session = &sessionMessages{s: s}
	impl.VM = &vmMessages{s: s}
	impl.Host = &hostMessages{s: s}
	impl.Task = &taskMessages{s: s}
	impl.Event = &eventMessages{s: s}
	impl.Message = &messageMessages{s: s}
	return impl
}
