// Package schemaimport turns the reference XenAPI data model (the facts extracted
// from upstream's IDL) into xapi-go's own schema format, keeping names, types,
// qualifiers, defaults and roles and dropping all descriptive prose.
package schemaimport
