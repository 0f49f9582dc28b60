// Package schema holds xapi-go's description of the whole XenAPI data model
// (model.json: classes, fields, types, qualifiers, defaults, messages, roles,
// enums, errors) and its loader, type parser, validator and the rules that
// derive each class's implicit messages.
package schema
