// A test client for the daemon's /minio/kms/v1 API built on MinIO's own admin SDK (madmin-go, as
// Debian packages it: golang-github-minio-madmin-go-dev 2.0.7). Usage:
//
//	madmin-client ENDPOINT ACCESS_KEY SECRET_KEY < commands
//
// Each stdin line is a JSON array ["Method", args...]; each answer is one JSON line:
// {"ok":bool,"status":<last HTTP status>,"code":...,"message":...,"value":...}.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/minio/madmin-go"
)

// recorder remembers the status of the last HTTP response madmin received.
type recorder struct{ last int }

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		r.last = res.StatusCode
	}
	return res, err
}

type answer struct {
	OK      bool        `json:"ok"`
	Status  int         `json:"status"`
	Code    string      `json:"code,omitempty"`
	Message string      `json:"message,omitempty"`
	Value   interface{} `json:"value,omitempty"`
}

func call(ctx context.Context, adm *madmin.AdminClient, args []string) (interface{}, error) {
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	switch args[0] {
	case "KMSStatus":
		return adm.KMSStatus(ctx)
	case "KMSMetrics":
		return adm.KMSMetrics(ctx)
	case "KMSAPIs":
		return adm.KMSAPIs(ctx)
	case "KMSVersion":
		return adm.KMSVersion(ctx)
	case "CreateKey":
		return nil, adm.CreateKey(ctx, arg(1))
	case "DeleteKey":
		return nil, adm.DeleteKey(ctx, arg(1))
	case "ImportKey":
		return nil, adm.ImportKey(ctx, arg(1), []byte(arg(2)))
	case "ListKeys":
		return adm.ListKeys(ctx, arg(1))
	case "GetKeyStatus":
		return adm.GetKeyStatus(ctx, arg(1))
	case "SetKMSPolicy":
		return nil, adm.SetKMSPolicy(ctx, arg(1), []byte(arg(2)))
	case "AssignPolicy":
		return nil, adm.AssignPolicy(ctx, arg(1), []byte(arg(2)))
	case "DescribePolicy":
		return adm.DescribePolicy(ctx, arg(1))
	case "GetPolicy":
		return adm.GetPolicy(ctx, arg(1))
	case "ListPolicies":
		return adm.ListPolicies(ctx, arg(1))
	case "DeletePolicy":
		return nil, adm.DeletePolicy(ctx, arg(1))
	case "DescribeIdentity":
		return adm.DescribeIdentity(ctx, arg(1))
	case "DescribeSelfIdentity":
		return adm.DescribeSelfIdentity(ctx)
	case "ListIdentities":
		return adm.ListIdentities(ctx, arg(1))
	case "DeleteIdentity":
		return nil, adm.DeleteIdentity(ctx, arg(1))
	}
	return nil, fmt.Errorf("unknown method %q", args[0])
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: madmin-client ENDPOINT ACCESS_KEY SECRET_KEY < commands")
		os.Exit(2)
	}
	adm, err := madmin.New(os.Args[1], os.Args[2], os.Args[3], false)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	rec := &recorder{}
	adm.SetCustomTransport(rec)
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var args []string
		if err := json.Unmarshal(in.Bytes(), &args); err != nil || len(args) == 0 {
			fmt.Fprintln(os.Stderr, "bad command line:", in.Text())
			os.Exit(2)
		}
		rec.last = 0
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		value, err := call(ctx, adm, args)
		cancel()
		a := answer{OK: err == nil, Status: rec.last, Value: value}
		if err != nil {
			e := madmin.ToErrorResponse(err)
			a.Code, a.Message = e.Code, e.Message
			if a.Message == "" {
				a.Message = err.Error()
			}
		}
		if err := out.Encode(a); err != nil {
			os.Exit(1)
		}
	}
}
