package gitclone

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/berth-dev/berth/webhooks/outbound"
)

// sshServer is a minimal git-over-ssh server: it accepts one client key and
// runs git-upload-pack for "exec" requests on repositories under root.
type sshServer struct {
	addr       string // 127.0.0.1:PORT
	knownHosts []byte // known_hosts line for the server's host key
	clientKey  []byte // PEM private key the server accepts
}

func newKey(t *testing.T) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return signer, pem.EncodeToMemory(block)
}

func newSSHServer(t *testing.T, root string) *sshServer {
	t.Helper()
	hostKey, _ := newKey(t)
	client, clientPEM := newKey(t)
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), client.PublicKey().Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(hostKey)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go serveSSH(conn, cfg, root)
		}
	}()
	addr := ln.Addr().String()
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, hostKey.PublicKey())
	return &sshServer{addr: addr, knownHosts: []byte(line + "\n"), clientKey: clientPEM}
}

func serveSSH(conn net.Conn, cfg *ssh.ServerConfig, root string) {
	defer conn.Close()
	_, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			defer ch.Close()
			for req := range chReqs {
				if req.Type != "exec" || len(req.Payload) < 4 {
					req.Reply(false, nil)
					continue
				}
				// "git-upload-pack '/repo.git'"
				command := string(req.Payload[4:])
				name, arg, _ := strings.Cut(command, " ")
				if name != "git-upload-pack" {
					req.Reply(false, nil)
					continue
				}
				req.Reply(true, nil)
				path := filepath.Join(root, filepath.Clean("/"+strings.Trim(arg, "'\"")))
				cmd := exec.Command("git-upload-pack", path)
				cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
				status := uint32(0)
				if err := cmd.Run(); err != nil {
					status = 1
				}
				ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
				return
			}
		}()
	}
}

func TestCloneSSH(t *testing.T) {
	requireGit(t)
	if _, err := exec.LookPath("git-upload-pack"); err != nil {
		t.Skip("git-upload-pack is not on PATH")
	}
	root := t.TempDir()
	f := newFixture(t, root, "repo", false)
	srv := newSSHServer(t, root)
	_, otherKey := newKey(t)
	otherHost, _ := newKey(t)
	wrongHostKey := []byte(knownhosts.Line([]string{knownhosts.Normalize(srv.addr)}, otherHost.PublicKey()) + "\n")

	urls := map[string]string{
		"ssh url":   "ssh://git@" + srv.addr + "/repo.git",
		"no user":   "ssh://" + srv.addr + "/repo.git",
		"scp style": "git@127.0.0.1:repo.git", // port 22: only parsed, see below
	}
	if _, err := newSource(urls["scp style"], &Credentials{SSHKey: srv.clientKey}, nil); err != nil {
		t.Fatalf("scp-style URL: %v", err)
	}

	tests := []struct {
		name     string
		url      string
		creds    *Credentials
		wantErr  error
		progress string
	}{
		{name: "key and known hosts", url: urls["ssh url"], creds: &Credentials{SSHKey: srv.clientKey, SSHKnownHosts: srv.knownHosts}},
		{name: "default user", url: urls["no user"], creds: &Credentials{SSHKey: srv.clientKey, SSHKnownHosts: srv.knownHosts}},
		{name: "no known hosts warns", url: urls["ssh url"], creds: &Credentials{SSHKey: srv.clientKey}, progress: "not verified"},
		{name: "wrong key", url: urls["ssh url"], creds: &Credentials{SSHKey: otherKey, SSHKnownHosts: srv.knownHosts}, wantErr: ErrAuth},
		{name: "host key mismatch", url: urls["ssh url"], creds: &Credentials{SSHKey: srv.clientKey, SSHKnownHosts: wrongHostKey}, wantErr: ErrAuth},
		{name: "bad key", url: urls["ssh url"], creds: &Credentials{SSHKey: []byte("not a key")}, wantErr: ErrInvalidCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var progress bytes.Buffer
			got, err := Clone(testContext(t), CloneRequest{URL: tt.url, Ref: "refs/heads/main", Commit: f.c2, Dir: filepath.Join(t.TempDir(), "src"), Credentials: tt.creds}, &progress)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				t.Logf("error: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("Clone: %v\n%s", err, progress.String())
			}
			if got != f.c2 {
				t.Fatalf("commit = %s, want %s", got, f.c2)
			}
			if !strings.Contains(progress.String(), tt.progress) {
				t.Fatalf("progress does not mention %q:\n%s", tt.progress, progress.String())
			}
			commit, _, err := ResolveRef(testContext(t), tt.url, Tag, "v1", tt.creds, nil)
			if err != nil || commit != f.c2 {
				t.Fatalf("ResolveRef = %s, %v; want %s", commit, err, f.c2)
			}
		})
	}
}

// TestGuardedCloneSSH: a guarded ssh clone dials the address the guard vetted, never a refused one, and
// still checks the host key under the URL's host name.
func TestGuardedCloneSSH(t *testing.T) {
	requireGit(t)
	if _, err := exec.LookPath("git-upload-pack"); err != nil {
		t.Skip("git-upload-pack is not on PATH")
	}
	root := t.TempDir()
	f := newFixture(t, root, "repo", false)
	srv := newSSHServer(t, root)
	_, port, _ := net.SplitHostPort(srv.addr)
	_, _, hostKey, _, _, err := ssh.ParseKnownHosts(srv.knownHosts)
	if err != nil {
		t.Fatal(err)
	}
	// Known under the name the URL gives, not under the address dialled.
	byName := []byte(knownhosts.Line([]string{knownhosts.Normalize("localhost:" + port)}, hostKey) + "\n")
	url := "ssh://git@localhost:" + port + "/repo.git"
	creds := &Credentials{SSHKey: srv.clientKey, SSHKnownHosts: byName}

	_, err = Clone(testContext(t), CloneRequest{URL: url, Ref: "refs/heads/main", Dir: t.TempDir(), Credentials: creds,
		Guard: &outbound.Guard{Flag: SourceAllowFlag}}, nil)
	if !errors.Is(err, outbound.ErrRefused) {
		t.Fatalf("guarded ssh clone of localhost: %v", err)
	}
	allow := &outbound.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
	got, err := Clone(testContext(t), CloneRequest{URL: url, Ref: "refs/heads/main", Dir: t.TempDir(), Credentials: creds, Guard: allow}, nil)
	if err != nil || got != f.c3 {
		t.Fatalf("guarded ssh clone in an allowed range: %s, %v", got, err)
	}
}
