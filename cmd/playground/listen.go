package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// checkListen checks --listen's syntax, before anything starts: HOST:PORT
// with HOST empty, an IP address or a host name, and PORT a number from 0
// to 65535 or a service name. Whether it can be bound is found out by
// binding it.
func checkListen(addr string) error {
	const want = "want HOST:PORT, such as 127.0.0.1:8080, :8080 or [::1]:8080"
	if addr == "" {
		return errors.New("--listen is empty: " + want)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: %s", addr, want)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("--listen %q: port %q: want a number from 0 to 65535", addr, port)
	}
	ip, _, _ := strings.Cut(host, "%") // fe80::1%eth0
	if host != "" && net.ParseIP(ip) == nil && !validHostname(host) {
		return fmt.Errorf("--listen %q: %q is neither an IP address nor a host name", addr, host)
	}
	return nil
}

func validHostname(h string) bool {
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// listenURLs is the URLs the listener at addr (bound for listen, the
// --listen value) can be reached at. A wildcard listener (0.0.0.0, ::, or
// no host: Go makes all three one dual-stack socket) is reached at
// localhost and at each address of the machine's interfaces, but for
// loopback and link-local ones (which need a zone no browser takes);
// another one at its own address, or the host name it was given.
func listenURLs(listen string, addr net.Addr, interfaceAddrs func() ([]net.Addr, error)) []string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return []string{"http://" + addr.String() + "/"}
	}
	port := strconv.Itoa(tcp.Port)
	url := func(host string) string { return "http://" + net.JoinHostPort(host, port) + "/" }
	if !tcp.IP.IsUnspecified() {
		host, _, err := net.SplitHostPort(listen)
		ip, _, _ := strings.Cut(host, "%")
		if err != nil || host == "" || net.ParseIP(ip) != nil {
			host = tcp.IP.String()
		}
		return []string{url(host)}
	}
	urls := []string{url("localhost")}
	addrs, err := interfaceAddrs()
	if err != nil {
		return urls
	}
	seen := map[string]bool{}
	var v6 []string // after the IPv4 ones, which are shorter to type
	for _, a := range addrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip := ipnet.IP
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsMulticast() || seen[ip.String()] {
			continue
		}
		seen[ip.String()] = true
		if ip.To4() == nil {
			v6 = append(v6, url(ip.String()))
			continue
		}
		urls = append(urls, url(ip.String()))
	}
	return append(urls, v6...)
}
