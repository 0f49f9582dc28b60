package where_test

import (
	"fmt"

	"github.com/xapi-go/xapi-go/internal/where"
)

type row map[string]string

func (r row) Column(name string) (string, bool) {
	v, ok := r[name]
	return v, ok
}

func Example() {
	e, err := where.Parse(`(field "uuid"="abc") or not (field "power_state" = "Running")`)
	if err != nil {
		panic(err)
	}
	fmt.Println(e.String())
	fmt.Println(where.Columns(e))
	ok, err := e.Eval(row{"uuid": "xyz", "power_state": "Halted"})
	fmt.Println(ok, err)

	_, err = where.Parse(`field name__label = "vm1"`)
	fmt.Println(err)
	// Output:
	// field "uuid" = "abc" or not field "power_state" = "Running"
	// [uuid power_state]
	// true <nil>
	// where: syntax error at offset 6: unexpected word "name__label" (want field, and, or, not, true, false, or a quoted string)
}
