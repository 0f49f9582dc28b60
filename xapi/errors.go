package xapi

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

func errNotImplemented(name string) error { return datamodel.ErrNotImplemented(name) }

// toFault converts any error into a XenAPI failure. A write that found no
// master is HOST_IS_SLAVE [the master's management address] or, with no
// master known, HOST_STILL_BOOTING.
func (s *Server) toFault(method string, err error) *datamodel.Error {
	var de *datamodel.Error
	if errors.As(err, &de) {
		return de
	}
	var nl *store.NotLeaderError
	if errors.As(err, &nl) {
		if nl.LeaderID == "" || nl.LeaderID == s.store.NodeID() {
			return datamodel.ErrHostStillBooting()
		}
		return datamodel.ErrHostIsSlave(s.masterAddress(nl.LeaderAddr))
	}
	s.log.Error("internal error", "method", method, "err", err)
	return datamodel.ErrInternalError(err.Error())
}

// paramError maps a decoding failure of parameter p to xapi's error.
func paramError(p string, err error) *datamodel.Error {
	var de *datamodel.DecodeError
	if errors.As(err, &de) {
		if de.Field != "" {
			return datamodel.ErrFieldTypeError(de.Field)
		}
		if len(de.Expected) > 5 && de.Expected[:5] == "enum:" {
			return datamodel.ErrInvalidValue(p, de.Got)
		}
		return datamodel.ErrFieldTypeError(p)
	}
	return datamodel.ErrFieldTypeError(p)
}

func countMismatch(m string, expected, received int) *datamodel.Error {
	return datamodel.ErrMessageParameterCountMismatch(m, strconv.Itoa(expected), strconv.Itoa(received))
}

func internalf(format string, a ...any) *datamodel.Error {
	return datamodel.ErrInternalError(fmt.Sprintf(format, a...))
}
