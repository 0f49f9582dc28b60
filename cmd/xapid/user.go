package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/xapi-go/xapi-go/xapi"
)

func init() {
	commands["user"] = command{"manage local users with a role: user add|list (see docs/rbac.md)", runUser}
}

// runUser implements `xapid user add --data-dir D --name N --role R --password P`
// and `xapid user list --data-dir D`. A user added is pending in
// DATA/auth-pending.json: the xapid running on that data directory adds it
// to the pool's replicated accounts within seconds (or at its next start),
// after which every host of the pool knows it.
func runUser(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "add" && args[0] != "list") {
		fmt.Fprintln(stderr, "usage: xapid user add --data-dir DIR --name NAME --role ROLE --password PW\n       xapid user list --data-dir DIR")
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("user "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "./var", "data directory of the host")
	name := fs.String("name", "", "user name (add)")
	role := fs.String("role", "read-only", "role: read-only, vm-operator, vm-admin, vm-power-admin, pool-operator, pool-admin (add)")
	pwd := fs.String("password", "", "password (add)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	auth, _, err := xapi.LoadAuth(*dataDir, "")
	if err != nil {
		fmt.Fprintf(stderr, "xapid: %v\n", err)
		return 1
	}
	switch verb {
	case "add":
		if *name == "" || *pwd == "" {
			fmt.Fprintln(stderr, "xapid: user add needs --name and --password")
			return 2
		}
		if err := auth.AddUser(*name, *role, *pwd); err != nil {
			fmt.Fprintf(stderr, "xapid: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "user %s added with role %s; the xapid of this data directory applies it to the pool within seconds (at its next start if it is not running)\n", *name, *role)
	case "list":
		// this host's copy of the pool's users, with the pending ones
		for _, u := range auth.Users() {
			fmt.Fprintf(stdout, "%s\t%s\n", u.Name, u.Role)
		}
	}
	return 0
}
