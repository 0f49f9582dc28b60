package schema

// Implicit kinds of derived messages.
const (
	ImplGetRecord          = "get_record"
	ImplGetByUUID          = "get_by_uuid"
	ImplCreate             = "create"
	ImplDestroy            = "destroy"
	ImplGetByNameLabel     = "get_by_name_label"
	ImplGetter             = "getter"
	ImplSetter             = "setter"
	ImplAdd                = "add"
	ImplRemove             = "remove"
	ImplAddTo              = "add_to"
	ImplRemoveFrom         = "remove_from"
	ImplGetAll             = "get_all"
	ImplGetAllWhere        = "get_all_where"
	ImplGetAllRecords      = "get_all_records"
	ImplGetAllRecordsWhere = "get_all_records_where"
)

// Messages returns every client-callable message of c: the implicit ones derived
// by xapi's rules (unless a custom message of the same name replaces them) and the
// explicit ones, in xapi's order.
func (m *Model) Messages(c *Class) []*Message {
	if m.implicitCache == nil {
		m.implicitCache = map[string][]*Message{}
	}
	if ms, ok := m.implicitCache[c.Name]; ok {
		return ms
	}
	custom := map[string]bool{}
	for _, msg := range c.Messages {
		custom[msg.Name] = true
	}
	var out []*Message
	add := func(msg *Message) {
		if custom[msg.Name] {
			return
		}
		msg.Class = c
		if msg.State == "" {
			msg.State = c.State
		}
		out = append(out, msg)
	}
	self := Param{Name: "self", Type: "ref:" + c.Name}
	if c.InDatabase {
		add(&Message{Name: "get_record", Implicit: ImplGetRecord, Params: []Param{self}, Result: "record:" + c.Name, Role: c.ImplicitRole})
		add(&Message{Name: "get_by_uuid", Implicit: ImplGetByUUID, Params: []Param{{Name: "uuid", Type: "string"}}, Result: "ref:" + c.Name, Role: c.ImplicitRole})
		if c.CtorDtor {
			add(&Message{Name: "create", Implicit: ImplCreate, Params: []Param{{Name: "args", Type: "record:" + c.Name}}, Result: "ref:" + c.Name, Role: c.DefaultRole, Async: true})
			add(&Message{Name: "destroy", Implicit: ImplDestroy, Params: []Param{self}, Role: c.DefaultRole, Async: true})
		}
		if f := c.Field("name_label"); f != nil && len(f.Path) == 2 {
			add(&Message{Name: "get_by_name_label", Implicit: ImplGetByNameLabel, Params: []Param{{Name: "label", Type: "string"}}, Result: "set<ref:" + c.Name + ">", Role: c.ImplicitRole})
		}
		for _, f := range c.Fields {
			if f.Internal {
				continue
			}
			add(&Message{Name: "get_" + f.Name, Implicit: ImplGetter, Field: f, Params: []Param{self}, Result: f.Type, Role: f.GetRole, State: f.State})
		}
		for _, f := range c.Fields {
			if f.Internal || f.Qualifier != "RW" {
				continue
			}
			t := m.MustType(f.Type)
			if t.Kind == KindSet && t.Elem.Kind == KindRef && !f.IgnoreFK {
				continue
			}
			add(&Message{Name: "set_" + f.Name, Implicit: ImplSetter, Field: f, Params: []Param{self, {Name: "value", Type: f.Type}}, Role: f.SetRole, State: f.State})
			switch t.Kind {
			case KindSet:
				add(&Message{Name: "add_" + f.Name, Implicit: ImplAdd, Field: f, Params: []Param{self, {Name: "value", Type: t.Elem.String()}}, Role: f.SetRole, State: f.State})
				add(&Message{Name: "remove_" + f.Name, Implicit: ImplRemove, Field: f, Params: []Param{self, {Name: "value", Type: t.Elem.String()}}, Role: f.SetRole, State: f.State})
			case KindMap:
				add(&Message{Name: "add_to_" + f.Name, Implicit: ImplAddTo, Field: f, Params: []Param{self, {Name: "key", Type: t.Key.String()}, {Name: "value", Type: t.Elem.String()}}, Role: f.SetRole, State: f.State})
				add(&Message{Name: "remove_from_" + f.Name, Implicit: ImplRemoveFrom, Field: f, Params: []Param{self, {Name: "key", Type: t.Key.String()}}, Role: f.SetRole, State: f.State})
			}
		}
	}
	out = append(out, c.Messages...)
	if c.InDatabase && c.GetAll {
		add(&Message{Name: "get_all", Implicit: ImplGetAll, Result: "set<ref:" + c.Name + ">", Role: c.ImplicitRole})
		add(&Message{Name: "get_all_where", Implicit: ImplGetAllWhere, Params: []Param{{Name: "expr", Type: "string"}}, Result: "set<ref:" + c.Name + ">", Role: c.ImplicitRole, Hidden: true})
		add(&Message{Name: "get_all_records", Implicit: ImplGetAllRecords, Result: "map<ref:" + c.Name + ",record:" + c.Name + ">", Role: c.ImplicitRole})
		add(&Message{Name: "get_all_records_where", Implicit: ImplGetAllRecordsWhere, Params: []Param{{Name: "expr", Type: "string"}}, Result: "map<ref:" + c.Name + ",record:" + c.Name + ">", Role: c.ImplicitRole, Hidden: true})
	}
	m.implicitCache[c.Name] = out
	return out
}
