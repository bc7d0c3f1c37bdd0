// Package netns runs short pieces of Go inside a Linux network namespace: a socket made there stays there
// (a listener in a build sandbox, served by goroutines of the host's namespace), a /proc/sys/net file opened
// there is that namespace's.
package netns

import (
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread that has entered the network namespace at path (/run/netns/NAME), then returns
// the thread to this process's namespace. fn must not start goroutines that expect to be in the namespace:
// only fn's own thread is. When the thread cannot return, it is left locked and so ends with its goroutine.
func Do(path string, fn func() error) error {
	runtime.LockOSThread()
	back, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: %w", err)
	}
	defer back.Close()
	target, err := os.Open(path)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: open %s: %w", path, err)
	}
	defer target.Close()
	if err := setns(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: enter %s: %w", path, err)
	}
	fnErr := fn()
	if err := setns(back); err != nil {
		// The thread stays locked and in the namespace: Go ends it when this goroutine returns.
		return fmt.Errorf("netns: leave %s: %w", path, err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

func setns(f *os.File) error {
	return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
}

// Listen opens a listener (network "tcp4" or "tcp") at address inside the namespace at path. Its
// connections come from that namespace; serving them happens in this process's.
func Listen(path, network, address string) (net.Listener, error) {
	var ln net.Listener
	err := Do(path, func() error {
		var err error
		ln, err = net.Listen(network, address)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ln, nil
}

// WriteSysctl writes value to /proc/sys/NAME (dots become slashes) of the namespace at path.
func WriteSysctl(path, name, value string) error {
	file := "/proc/sys/" + dotsToSlashes(name)
	return Do(path, func() error {
		return os.WriteFile(file, []byte(value), 0o644)
	})
}

func dotsToSlashes(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '.' {
			b[i] = '/'
		}
	}
	return string(b)
}
