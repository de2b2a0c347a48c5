//! Real `kubectl` against a simulator, as an independent client: the machine image has
//! it at /usr/bin/kubectl; where it is missing, the tests that need it say so and stop.

use std::path::PathBuf;
use std::process::Output;

use framedb_kube_sim::Simulator;

/// `kubectl` configured for one simulator, with a kubeconfig and cache of its own.
pub struct Kubectl {
    dir: PathBuf,
}

/// What one kubectl command did.
pub struct Ran {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

const KUBECTL: &str = "/usr/bin/kubectl";

impl Kubectl {
    /// kubectl for `sim`, or `None` (with a note) when kubectl is not installed.
    pub fn for_sim(sim: &Simulator, test: &str) -> Option<Self> {
        if !std::path::Path::new(KUBECTL).exists() {
            println!("kubectl is not installed at {KUBECTL}: skipping");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("framedb-sim-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        sim.write_kubeconfig(&dir.join("kubeconfig.json")).unwrap();
        Some(Self { dir })
    }

    /// Runs `kubectl ARGS` and returns what it did, printed for the test's output.
    pub async fn run(&self, args: &[&str]) -> Ran {
        let Output {
            status,
            stdout,
            stderr,
        } = tokio::process::Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(self.dir.join("kubeconfig.json"))
            .arg("--cache-dir")
            .arg(self.dir.join("cache"))
            .args(args)
            .output()
            .await
            .expect("kubectl runs");
        let ran = Ran {
            success: status.success(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        };
        println!("$ kubectl {}\n{}{}", args.join(" "), ran.stdout, ran.stderr);
        ran
    }

    /// Runs `kubectl ARGS`, which must succeed; returns its output.
    pub async fn ok(&self, args: &[&str]) -> String {
        let ran = self.run(args).await;
        assert!(ran.success, "kubectl {args:?} failed: {}", ran.stderr);
        ran.stdout
    }

    /// Writes `manifest` to a file of this kubectl's own and runs `kubectl VERB -f FILE`;
    /// returns what it did.
    pub async fn with_manifest(&self, verb: &str, manifest: &serde_json::Value) -> Ran {
        let file = self.dir.join("manifest.json");
        std::fs::write(&file, manifest.to_string()).unwrap();
        self.run(&[verb, "-f", file.to_str().unwrap()]).await
    }

    /// Runs `kubectl ARGS`, which must fail; returns what it printed on stderr.
    pub async fn refused(&self, args: &[&str]) -> String {
        let ran = self.run(args).await;
        assert!(!ran.success, "kubectl {args:?} succeeded: {}", ran.stdout);
        ran.stderr
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
