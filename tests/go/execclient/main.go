// Command execclient runs one pod exec through client-go's own executors, so tests can hold the simulator to
// what real Kubernetes clients do: SPDY (what cilium-cli and kubectl before 1.30 use, and kubectl falls back to)
// or websocket (v5.channel.k8s.io). It copies the remote stdout/stderr to its own and exits with the remote exit
// code; any other failure is printed as "execclient: <error>" on stderr with exit code 255.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file")
	namespace := flag.String("namespace", "default", "pod namespace")
	pod := flag.String("pod", "", "pod name")
	container := flag.String("container", "", "container name")
	mode := flag.String("mode", "spdy", "spdy or websocket")
	stdin := flag.Bool("stdin", false, "send this program's stdin to the command")
	timeout := flag.Duration("timeout", 60*time.Second, "give up after this long")
	flag.Parse()
	if err := run(*kubeconfig, *namespace, *pod, *container, *mode, *stdin, *timeout, flag.Args()); err != nil {
		var exitErr exec.CodeExitError
		if errors.As(err, &exitErr) {
			os.Exit(exitErr.Code)
		}
		fmt.Fprintf(os.Stderr, "execclient: %v\n", err)
		os.Exit(255)
	}
}

func run(kubeconfig, namespace, pod, container, mode string, stdin bool, timeout time.Duration, command []string) error {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	// the request as kubectl exec builds it (k8s.io/kubectl/pkg/cmd/exec/exec.go)
	req := clientset.CoreV1().RESTClient().Post().Resource("pods").Name(pod).Namespace(namespace).SubResource("exec")
	req.VersionedParams(&corev1.PodExecOptions{
		Container: container,
		Command:   command,
		Stdin:     stdin,
		Stdout:    true,
		Stderr:    true,
	}, scheme.ParameterCodec)
	var executor remotecommand.Executor
	switch mode {
	case "spdy":
		executor, err = remotecommand.NewSPDYExecutor(config, http.MethodPost, req.URL())
	case "websocket":
		executor, err = remotecommand.NewWebSocketExecutor(config, http.MethodGet, req.URL().String())
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		return err
	}
	var in io.Reader
	if stdin {
		in = os.Stdin
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return executor.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: in, Stdout: os.Stdout, Stderr: os.Stderr})
}
