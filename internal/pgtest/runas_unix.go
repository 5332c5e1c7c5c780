//go:build unix

package pgtest

import (
	"errors"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// serverUser picks the account for the server: the caller, unless the
// caller is root, which PostgreSQL refuses ("root" execution of the
// PostgreSQL server is not permitted).
func serverUser() (osUser, error) {
	if os.Geteuid() != 0 {
		return osUser{name: "current user", uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return osUser{name: name, uid: uid, gid: gid, switched: true}, nil
	}
	return osUser{}, errors.New("pgtest: running as root and neither the postgres nor the nobody OS user exists")
}

func (u osUser) sysProcAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{}
	if u.switched {
		// No supplementary groups: Groups is empty and NoSetGroups false.
		a.Credential = &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid)}
	}
	return a
}
