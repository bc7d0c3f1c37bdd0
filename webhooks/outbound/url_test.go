package outbound

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestValidateURL(t *testing.T) {
	long := "https://hooks.example.com/" + strings.Repeat("a", MaxURLLength-len("https://hooks.example.com/"))
	tests := []struct {
		url  string
		rule string // "" = accepted
		msg  string // substring of the refusal
	}{
		{"http://hooks.example.com/berth", "", ""},
		{"http://hooks.example.com:80/berth", "", ""},
		{"http://hooks.example.com:79/", "port", "port 79 is not allowed for http"},
		{"http://hooks.example.com:81/", "port", "port 81 is not allowed for http"},
		{"http://hooks.example.com:21/", "", ""},
		{"http://hooks.example.com:70/", "", ""},
		{"http://hooks.example.com:210/", "", ""},
		{"http://hooks.example.com:280/", "", ""},
		{"http://hooks.example.com:443/", "", ""},
		{"http://hooks.example.com:488/", "", ""},
		{"http://hooks.example.com:591/", "", ""},
		{"http://hooks.example.com:777/", "", ""},
		{"http://hooks.example.com:22/", "port", "port 22 is not allowed for http"},
		{"http://hooks.example.com:1024/", "port", "port 1024 is not allowed for http: http triggers must use port 80, 21, 443, 70, 210, 280, 488, 591, 777 or 1025-65535"},
		{"http://hooks.example.com:1025/", "", ""},
		{"http://hooks.example.com:8080/", "", ""},
		{"http://hooks.example.com:65535/", "", ""},
		{"http://hooks.example.com:65536/", "port", "port 65536 is not allowed for http"},
		{"http://hooks.example.com:99999/", "port", "port 99999 is not allowed for http"},
		{"http://hooks.example.com:0/", "port", "port 0 is not allowed for http"},
		{"http://hooks.example.com:080/", "port", `port "080" is not a decimal port number`},
		{"http://hooks.example.com:/", "", ""}, // empty port: the default
		{"https://hooks.example.com/berth?x=1", "", ""},
		{"https://hooks.example.com:443/berth", "", ""},
		{"https://hooks.example.com:8443/", "port", "port 8443 is not allowed for https: https triggers must use port 443"},
		{"https://hooks.example.com:80/", "port", "port 80 is not allowed for https: https triggers must use port 443"},
		{"HTTPS://Hooks.Example.com/", "", ""},
		{"ftp://hooks.example.com/", "scheme", `scheme "ftp" is not allowed: trigger URLs must use http or https`},
		{"file:///etc/passwd", "scheme", `scheme "file" is not allowed`},
		{"gopher://hooks.example.com:70/", "scheme", `scheme "gopher" is not allowed`},
		{"hooks.example.com/berth", "scheme", "URL has no scheme"},
		{"//hooks.example.com/berth", "scheme", "URL has no scheme"},
		{"http://user:pass@hooks.example.com/", "userinfo", "must not carry credentials"},
		{"http://user@hooks.example.com/", "userinfo", "must not carry credentials"},
		{"http:///berth", "host", "URL has no host"},
		{"http:hooks.example.com", "host", "URL has no host"},
		{"http://:8080/", "host", "URL has no host"},
		{"http://[fe80::1%25eth0]:8080/", "host", "IPv6 zone"},
		{"http://[::1]:8080/", "", ""}, // addresses are checked at delivery time
		{"http://hooks.example.com/a b", "", ""},
		{"http://hooks example.com/", "syntax", "cannot be parsed"},
		{" http://hooks.example.com/", "syntax", "spaces"},
		{"http://hooks.example.com/\n", "syntax", "spaces"},
		{"", "syntax", "empty"},
		{long, "", ""},
		{long + "a", "length", "at most 2048 characters"},
	}
	for _, tt := range tests {
		err := ValidateURL(tt.url)
		if tt.rule == "" {
			if err != nil {
				t.Errorf("ValidateURL(%q) = %v, want accepted", tt.url, err)
			}
			continue
		}
		var ue *URLError
		if !errors.As(err, &ue) || !errors.Is(err, ErrInvalidURL) {
			t.Errorf("ValidateURL(%q) = %v, want a URLError", tt.url, err)
			continue
		}
		if ue.Rule != tt.rule || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ValidateURL(%q) = [%s] %q, want [%s] containing %q", tt.url, ue.Rule, err, tt.rule, tt.msg)
		}
	}
}

func TestValidateURLEveryPort(t *testing.T) {
	allowed := map[int]bool{80: true, 21: true, 443: true, 70: true, 210: true, 280: true, 488: true, 591: true, 777: true}
	for port := 1; port <= 65536; port++ {
		want := allowed[port] || port >= 1025 && port <= 65535
		got := ValidateURL("http://h.example:"+strconv.Itoa(port)+"/") == nil
		if got != want {
			t.Fatalf("http port %d: accepted=%v, want %v", port, got, want)
		}
		if got := ValidateURL("https://h.example:"+strconv.Itoa(port)+"/") == nil; got != (port == 443) {
			t.Fatalf("https port %d: accepted=%v", port, got)
		}
	}
}
