// Command garp claims an IPv4 address on a link: it broadcasts gratuitous ARP (requests and replies whose
// sender is ADDR at this interface's MAC) every 100 ms for a while. TestBuildsL2Isolated runs it in a
// build, against the build bridge's gateway.
//
//	garp IFACE ADDR DURATION
package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: garp IFACE ADDR DURATION")
		os.Exit(2)
	}
	ifc, err := net.InterfaceByName(os.Args[1])
	check(err)
	addr, err := netip.ParseAddr(os.Args[2])
	check(err)
	d, err := time.ParseDuration(os.Args[3])
	check(err)
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, int(htons(syscall.ETH_P_ARP)))
	check(err)
	bcast := [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	to := &syscall.SockaddrLinklayer{Ifindex: ifc.Index, Protocol: htons(syscall.ETH_P_ARP), Halen: 6, Addr: bcast}
	ip := addr.As4()
	frame := func(op uint16, tha []byte) []byte {
		f := make([]byte, 0, 42)
		f = append(f, bcast[:6]...)
		f = append(f, ifc.HardwareAddr...)
		f = binary.BigEndian.AppendUint16(f, syscall.ETH_P_ARP)
		f = binary.BigEndian.AppendUint16(f, 1)      // Ethernet
		f = binary.BigEndian.AppendUint16(f, 0x0800) // IPv4
		f = append(f, 6, 4)
		f = binary.BigEndian.AppendUint16(f, op)
		f = append(f, ifc.HardwareAddr...)
		f = append(f, ip[:]...)
		f = append(f, tha...)
		return append(f, ip[:]...)
	}
	request := frame(1, make([]byte, 6))
	reply := frame(2, ifc.HardwareAddr)
	sent := 0
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for _, f := range [][]byte{request, reply} {
			if err := syscall.Sendto(fd, f, 0, to); err != nil {
				fmt.Println("garp: send:", err)
			} else {
				sent++
			}
		}
	}
	fmt.Printf("garp: sent %d frames claiming %s at %s\n", sent, addr, ifc.HardwareAddr)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "garp:", err)
		os.Exit(1)
	}
}
