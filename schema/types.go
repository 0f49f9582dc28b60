package schema

import (
	"fmt"
	"strings"
)

// Kind is the shape of a type.
type Kind int

// The kinds of XenAPI types.
const (
	KindString Kind = iota
	KindInt
	KindFloat
	KindBool
	KindDateTime
	KindRef
	KindEnum
	KindSet
	KindMap
	KindRecord
	KindOption
)

// Type is a parsed type of the schema. Its textual form is
// string | int | float | bool | datetime | ref:C | enum:E | record:C | set<T> | map<K,V> | option<T>.
type Type struct {
	Kind Kind
	Name string // class for ref/record, enum name for enum
	Elem *Type  // set, option: element; map: value
	Key  *Type  // map key
}

// String gives the canonical textual form.
func (t *Type) String() string {
	switch t.Kind {
	case KindString:
		return "string"
	case KindInt:
		return "int"
	case KindFloat:
		return "float"
	case KindBool:
		return "bool"
	case KindDateTime:
		return "datetime"
	case KindRef:
		return "ref:" + t.Name
	case KindEnum:
		return "enum:" + t.Name
	case KindRecord:
		return "record:" + t.Name
	case KindSet:
		return "set<" + t.Elem.String() + ">"
	case KindOption:
		return "option<" + t.Elem.String() + ">"
	case KindMap:
		return "map<" + t.Key.String() + "," + t.Elem.String() + ">"
	}
	return "?"
}

// Walk calls fn for t and every type nested in it.
func (t *Type) Walk(fn func(*Type)) {
	fn(t)
	if t.Key != nil {
		t.Key.Walk(fn)
	}
	if t.Elem != nil {
		t.Elem.Walk(fn)
	}
}

// ParseType parses the textual form of a type.
func ParseType(s string) (*Type, error) {
	t, rest, err := parseType(s)
	if err != nil {
		return nil, err
	}
	if rest != "" {
		return nil, fmt.Errorf("type %q: trailing %q", s, rest)
	}
	return t, nil
}

func parseType(s string) (*Type, string, error) {
	word := s
	if i := strings.IndexAny(s, "<>,"); i >= 0 {
		word = s[:i]
	}
	rest := s[len(word):]
	switch {
	case word == "string":
		return &Type{Kind: KindString}, rest, nil
	case word == "int":
		return &Type{Kind: KindInt}, rest, nil
	case word == "float":
		return &Type{Kind: KindFloat}, rest, nil
	case word == "bool":
		return &Type{Kind: KindBool}, rest, nil
	case word == "datetime":
		return &Type{Kind: KindDateTime}, rest, nil
	case strings.HasPrefix(word, "ref:"):
		return &Type{Kind: KindRef, Name: word[4:]}, rest, nil
	case strings.HasPrefix(word, "enum:"):
		return &Type{Kind: KindEnum, Name: word[5:]}, rest, nil
	case strings.HasPrefix(word, "record:"):
		return &Type{Kind: KindRecord, Name: word[7:]}, rest, nil
	case word == "set" || word == "option":
		if !strings.HasPrefix(rest, "<") {
			return nil, "", fmt.Errorf("type %q: expected <", s)
		}
		e, r, err := parseType(rest[1:])
		if err != nil {
			return nil, "", err
		}
		if !strings.HasPrefix(r, ">") {
			return nil, "", fmt.Errorf("type %q: expected >", s)
		}
		k := KindSet
		if word == "option" {
			k = KindOption
		}
		return &Type{Kind: k, Elem: e}, r[1:], nil
	case word == "map":
		if !strings.HasPrefix(rest, "<") {
			return nil, "", fmt.Errorf("type %q: expected <", s)
		}
		k, r, err := parseType(rest[1:])
		if err != nil {
			return nil, "", err
		}
		if !strings.HasPrefix(r, ",") {
			return nil, "", fmt.Errorf("type %q: expected ,", s)
		}
		v, r, err := parseType(r[1:])
		if err != nil {
			return nil, "", err
		}
		if !strings.HasPrefix(r, ">") {
			return nil, "", fmt.Errorf("type %q: expected >", s)
		}
		return &Type{Kind: KindMap, Key: k, Elem: v}, r[1:], nil
	}
	return nil, "", fmt.Errorf("type %q: unknown type %q", s, word)
}
