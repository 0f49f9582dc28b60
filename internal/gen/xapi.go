package gen

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/xapi-go/xapi-go/schema"
)

func (g *generator) explicitClasses() []*schema.Class {
	var out []*schema.Class
	for _, c := range g.m.Classes {
		if len(c.Messages) > 0 {
			out = append(out, c)
		}
	}
	return out
}

type goParam struct {
	name, typ string
	p         schema.Param
}

func (g *generator) params(msg *schema.Message) []goParam {
	var out []goParam
	seen := map[string]bool{}
	for _, p := range msg.Params {
		n := localName(p.Name)
		for seen[n] {
			n += "_"
		}
		seen[n] = true
		out = append(out, goParam{name: n, typ: g.qualified(g.m.MustType(p.Type)), p: p})
	}
	return out
}

// resultType is the Go result type of an explicit message. Messages with a
// custom marshaller (event.from's batch struct, event.next's events with
// snapshots) return any: their implementations give a ResultFunc that writes
// the wire value, which differs from the model's declared type.
func (g *generator) resultType(msg *schema.Message) string {
	if msg.Custom {
		return "any"
	}
	return g.qualified(g.m.MustType(msg.Result))
}

func (g *generator) signature(msg *schema.Message) string {
	var b strings.Builder
	b.WriteString("ctx context.Context, call *Call")
	for _, p := range g.params(msg) {
		fmt.Fprintf(&b, ", %s %s", p.name, p.typ)
	}
	b.WriteString(")")
	if msg.Result != "" {
		fmt.Fprintf(&b, " (%s, error)", g.resultType(msg))
	} else {
		b.WriteString(" error")
	}
	return b.String()
}

func (g *generator) genMessages() string {
	var b strings.Builder
	b.WriteString(header + "package xapi\n\nimport (\n\t\"context\"\n\t\"time\"\n\n\t\"github.com/xapi-go/xapi-go/datamodel\"\n)\n\nvar _ time.Time\n\n")
	for _, c := range g.explicitClasses() {
		gn := goName(c.Name)
		fmt.Fprintf(&b, "// %sMessages are the explicit messages of class %s.\ntype %sMessages interface {\n", gn, c.Name, gn)
		seen := map[string]bool{}
		for _, msg := range c.Messages {
			mn := goName(msg.Name)
			if seen[mn] {
				panic("method name collision " + c.Name + "." + mn)
			}
			seen[mn] = true
			fmt.Fprintf(&b, "\t// %s is %s.%s.\n\t%s(%s\n", mn, c.Name, msg.Name, mn, g.signature(msg))
		}
		b.WriteString("}\n\n")
		fmt.Fprintf(&b, "// Unimplemented%sMessages answers NOT_IMPLEMENTED to every message; embed it\n// and override what is built.\ntype Unimplemented%sMessages struct{}\n\n", gn, gn)
		for _, msg := range c.Messages {
			mn := goName(msg.Name)
			ret := "errNotImplemented(" + strconv.Quote(c.Name+"."+msg.Name) + ")"
			if msg.Result != "" {
				ret = "*new(" + g.resultType(msg) + "), " + ret
			}
			fmt.Fprintf(&b, "// %s answers NOT_IMPLEMENTED.\nfunc (Unimplemented%sMessages) %s(%s {\n\treturn %s\n}\n\n", mn, gn, mn, g.signature(msg), ret)
		}
	}
	b.WriteString("// Impl holds the implementation of every class's explicit messages.\ntype Impl struct {\n")
	for _, c := range g.explicitClasses() {
		fmt.Fprintf(&b, "\t%s %sMessages\n", goName(c.Name), goName(c.Name))
	}
	b.WriteString("}\n\n// NewUnimplemented returns an Impl that answers NOT_IMPLEMENTED everywhere.\nfunc NewUnimplemented() *Impl {\n\treturn &Impl{\n")
	for _, c := range g.explicitClasses() {
		fmt.Fprintf(&b, "\t\t%s: Unimplemented%sMessages{},\n", goName(c.Name), goName(c.Name))
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

func (g *generator) genDispatch() string {
	var b strings.Builder
	b.WriteString(header + "package xapi\n\nimport (\n\t\"context\"\n\t\"time\"\n\n\t\"github.com/xapi-go/xapi-go/datamodel\"\n)\n\nvar _ time.Time\nvar _ context.Context\n\n")
	b.WriteString("// methodTable lists every client-callable message of the model.\nfunc methodTable() []*Method {\n\treturn []*Method{\n")
	for _, c := range g.m.Classes {
		gn := goName(c.Name)
		for _, msg := range g.m.Messages(c) {
			fmt.Fprintf(&b, "\t\t{Name: %q, Class: datamodel.%sClass, Message: %q, Role: %q", c.Name+"."+msg.Name, gn, msg.Name, msg.Role)
			if !msg.NoSession {
				b.WriteString(", Session: true")
			}
			if msg.Async {
				b.WriteString(", Async: true")
			}
			if msg.Hidden {
				b.WriteString(", Hidden: true")
			}
			if msg.PoolInternal {
				b.WriteString(", PoolInternal: true")
			}
			if msg.State != "" && msg.State != "published" {
				fmt.Fprintf(&b, ", State: %q", msg.State)
			}
			if msg.Result != "" {
				fmt.Fprintf(&b, ", Result: datamodel.%s", tvar(msg.Result))
			}
			if len(msg.Params) > 0 {
				b.WriteString(", Params: []Param{")
				for _, p := range msg.Params {
					fmt.Fprintf(&b, "{Name: %q, Type: datamodel.%s", p.Name, tvar(p.Type))
					if len(p.Default) > 0 {
						fmt.Fprintf(&b, ", Default: %q", string(p.Default))
					}
					b.WriteString("}, ")
				}
				b.WriteString("}")
			}
			if len(msg.Errors) > 0 {
				b.WriteString(", Errors: []string{")
				for _, e := range msg.Errors {
					fmt.Fprintf(&b, "%q, ", e)
				}
				b.WriteString("}")
			}
			if msg.Implicit != "" {
				fmt.Fprintf(&b, ", Implicit: %q", msg.Implicit)
				if msg.Field != nil {
					fmt.Fprintf(&b, ", Field: datamodel.%sClass.Fields[%d]", gn, fieldIndex(c, msg.Field))
				}
			} else {
				// typed call into the implementation
				mn := goName(msg.Name)
				var args []string
				for i, p := range g.params(msg) {
					args = append(args, fmt.Sprintf("a[%d].(%s)", i, p.typ))
				}
				call := fmt.Sprintf("impl.%s.%s(ctx, c%s)", gn, mn, prefixComma(args))
				if msg.Result != "" {
					fmt.Fprintf(&b, ",\n\t\t\tCall: func(ctx context.Context, impl *Impl, c *Call, a []any) (any, error) { return %s }", call)
				} else {
					fmt.Fprintf(&b, ",\n\t\t\tCall: func(ctx context.Context, impl *Impl, c *Call, a []any) (any, error) { return nil, %s }", call)
				}
			}
			b.WriteString("},\n")
		}
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

func prefixComma(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return ", " + strings.Join(args, ", ")
}

func fieldIndex(c *schema.Class, f *schema.Field) int {
	for i, x := range c.Fields {
		if x == f {
			return i
		}
	}
	panic("field not in class")
}
