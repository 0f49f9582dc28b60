package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

func main() {
	verbose := flag.Bool("v", false, "list implemented and missing messages")
	flag.Parse()
	srv, stop, err := xapitest.Start(xapitest.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "apicoverage:", err)
		os.Exit(1)
	}
	defer stop()
	r := srv.API.Coverage(context.Background())
	fmt.Println(r)
	if *verbose {
		fmt.Println("implemented:\n  " + strings.Join(r.Implemented, "\n  "))
		fmt.Println("missing:\n  " + strings.Join(r.Missing, "\n  "))
	}
}
