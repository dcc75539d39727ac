package testenv

import (
	"os"
	"strconv"

	"github.com/prometheus/procfs"
)

// Children lists the processes whose parent is this process, each as
// "PID (comm)", but those keep says the tests keep for good (the
// runtime's spawner). Where there is no /proc, none.
func Children(keep func(pid int) bool) []string {
	ps, err := procfs.AllProcs()
	if err != nil {
		return nil
	}
	var kids []string
	for _, p := range ps {
		st, err := p.Stat()
		if err != nil || st.PPID != os.Getpid() || keep != nil && keep(st.PID) {
			continue // gone, or not ours
		}
		kids = append(kids, strconv.Itoa(st.PID)+" ("+st.Comm+")")
	}
	return kids
}
