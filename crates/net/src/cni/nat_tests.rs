use std::sync::Mutex;

use serde_json::json;

use super::*;

/// Records every batch and listing; fails the first `fail_applies` batches and answers
/// listings from `listings`.
#[derive(Default)]
struct FakeNft {
    applied: Mutex<Vec<String>>,
    listed: Mutex<Vec<String>>,
    fail_applies: Mutex<usize>,
    listings: Vec<(String, String)>,
}

impl Nft for FakeNft {
    fn route_localnet(&self, bridge: &str) -> Result<(), String> {
        self.applied
            .lock()
            .expect("lock")
            .push(format!("route_localnet {bridge}"));
        Ok(())
    }

    fn apply(&self, script: &str) -> Result<(), String> {
        self.applied.lock().expect("lock").push(script.to_owned());
        let mut fail = self.fail_applies.lock().expect("lock");
        if *fail > 0 {
            *fail -= 1;
            return Err("Error: No such file or directory".to_owned());
        }
        Ok(())
    }

    fn list(&self, what: &str) -> Result<String, String> {
        self.listed.lock().expect("lock").push(what.to_owned());
        self.listings
            .iter()
            .find(|(w, _)| w == what)
            .map(|(_, out)| out.clone())
            .ok_or_else(|| "Error: No such file or directory".to_owned())
    }
}

fn inv() -> Invocation {
    Invocation {
        container_id: "abc123".to_owned(),
        netns: Some("/run/berth/netns/abc123".into()),
        ifname: "eth0".to_owned(),
        args: String::new(),
    }
}

fn prev() -> Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "berth0", "mac": "aa:bb:cc:dd:ee:ff"},
            {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:00"},
            {"name": "eth0", "mac": "aa:bb:cc:dd:ee:01", "sandbox": "/run/berth/netns/abc123"},
        ],
        "ips": [{"address": "10.88.0.5/16", "gateway": "10.88.0.1", "interface": 2}],
    })
}

fn config(ports: Value) -> Vec<u8> {
    let mut c = json!({
        "cniVersion": "1.0.0",
        "name": "berth",
        "type": PLUGIN,
        "table": "berthtest",
        "prevResult": prev(),
    });
    if !ports.is_null() {
        c["runtimeConfig"] = json!({ "portMappings": ports });
    }
    serde_json::to_vec(&c).expect("json")
}

#[test]
fn add_publishes_ports_in_one_batch_and_passes_the_result_on() {
    let nft = FakeNft::default();
    let ports = json!([
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"},
    ]);
    let out = invoke("ADD", &inv(), &config(ports), &nft).expect("ADD");
    let result: Value = serde_json::from_slice(&out).expect("result");
    assert_eq!(result, prev(), "the previous result is passed on");
    let applied = nft.applied.lock().expect("lock");
    assert_eq!(
        applied.len(),
        2,
        "the sysctl and one transaction: {applied:?}"
    );
    assert_eq!(applied[0], "route_localnet berth0");
    let script = &applied[1];
    for expected in [
        "add element ip berthtest bridges { \"berth0\" }",
        "add element ip berthtest subnets { 10.88.0.0/16 }",
        "add chain ip berthtest c-abc123-eth0",
        "flush chain ip berthtest c-abc123-eth0",
        "add rule ip berthtest c-abc123-eth0 meta l4proto tcp th dport 8080 dnat to 10.88.0.5:80",
        "add rule ip berthtest c-abc123-eth0 meta l4proto udp ip daddr 127.0.0.1 th dport 5353 dnat to 10.88.0.5:53",
        "add element ip berthtest ports { tcp . 8080 : jump c-abc123-eth0 }",
        "add element ip berthtest ports_ip { udp . 127.0.0.1 . 5353 : jump c-abc123-eth0 }",
    ] {
        assert!(script.contains(expected), "{expected}\nin\n{script}");
    }
}

#[test]
fn add_without_ports_adds_only_the_networks_elements_and_makes_the_table_once() {
    let nft = FakeNft {
        fail_applies: Mutex::new(1),
        ..FakeNft::default()
    };
    invoke("ADD", &inv(), &config(Value::Null), &nft).expect("ADD");
    let applied = nft.applied.lock().expect("lock");
    assert_eq!(
        applied.len(),
        3,
        "batch, skeleton, batch again: {applied:?}"
    );
    assert!(applied[1].starts_with("create table ip berthtest\n"));
    assert_eq!(applied[0], applied[2]);
    assert!(!applied[0].contains("chain"), "{}", applied[0]);
    assert!(
        applied[0].contains("add element ip berthtest same_bridge { \"berth0\" . \"berth0\" }")
    );
}

#[test]
fn a_failing_batch_is_a_cni_error_with_nfts_message() {
    let nft = FakeNft {
        fail_applies: Mutex::new(3),
        ..FakeNft::default()
    };
    let err = invoke("ADD", &inv(), &config(Value::Null), &nft).unwrap_err();
    assert_eq!(err.code, CODE_NFT);
    assert_eq!(err.details, "Error: No such file or directory");
}

#[test]
fn del_of_a_container_without_ports_runs_nothing() {
    let nft = FakeNft::default();
    let out = invoke("DEL", &inv(), &config(Value::Null), &nft).expect("DEL");
    assert!(out.is_empty());
    assert!(nft.applied.lock().expect("lock").is_empty());
    assert!(nft.listed.lock().expect("lock").is_empty());
}

#[test]
fn del_removes_the_map_entries_and_the_chain_in_one_batch() {
    let nft = FakeNft::default();
    let ports = json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]);
    invoke("DEL", &inv(), &config(ports), &nft).expect("DEL");
    let applied = nft.applied.lock().expect("lock");
    assert_eq!(
        applied.as_slice(),
        ["add chain ip berthtest c-abc123-eth0\n\
          add element ip berthtest ports { tcp . 8080 : jump c-abc123-eth0 }\n\
          delete element ip berthtest ports { tcp . 8080 }\n\
          flush chain ip berthtest c-abc123-eth0\n\
          delete chain ip berthtest c-abc123-eth0\n"]
    );
}

#[test]
fn del_with_the_wrong_ports_finds_the_containers_entries_in_the_maps() {
    let listing = "table ip berthtest {\n\tmap ports {\n\t\ttype inet_proto . inet_service : verdict\n\
        \t\telements = { tcp . 8080 : jump c-other-eth0, tcp . 9090 : jump c-abc123-eth0,\n\
        \t\t\t     udp . 53 : jump c-abc123-eth0 }\n\t}\n}\n";
    let nft = FakeNft {
        fail_applies: Mutex::new(1),
        listings: vec![
            ("map ip berthtest ports".to_owned(), listing.to_owned()),
            (
                "map ip berthtest ports_ip".to_owned(),
                "table ip berthtest {\n\tmap ports_ip {\n\t}\n}\n".to_owned(),
            ),
        ],
        ..FakeNft::default()
    };
    let placeholder = json!([{"hostPort": 1, "containerPort": 1, "protocol": "tcp"}]);
    invoke("DEL", &inv(), &config(placeholder), &nft).expect("DEL");
    let applied = nft.applied.lock().expect("lock");
    assert_eq!(applied.len(), 2);
    assert!(
        applied[1].contains("delete element ip berthtest ports { tcp . 9090 }")
            && applied[1].contains("delete element ip berthtest ports { udp . 53 }")
            && !applied[1].contains("8080")
            && applied[1].ends_with("delete chain ip berthtest c-abc123-eth0\n"),
        "{}",
        applied[1]
    );
}

#[test]
fn del_when_the_table_is_gone_is_not_an_error() {
    let nft = FakeNft {
        fail_applies: Mutex::new(1),
        ..FakeNft::default()
    };
    let ports = json!([{"hostPort": 8080, "containerPort": 80}]);
    invoke("DEL", &inv(), &config(ports), &nft).expect("DEL");
}

#[test]
fn bad_input_is_refused_with_the_cni_code_and_what_to_fix() {
    let nft = FakeNft::default();
    let bad_id = Invocation {
        container_id: "a;b".to_owned(),
        ..inv()
    };
    let err = invoke("ADD", &bad_id, &config(Value::Null), &nft).unwrap_err();
    assert_eq!(err.code, CODE_ENV);
    assert!(err.msg.contains("CNI_CONTAINERID \"a;b\""), "{}", err.msg);

    let mut old = json!({"cniVersion": "0.3.1", "name": "n", "type": PLUGIN});
    let err = invoke(
        "ADD",
        &inv(),
        &serde_json::to_vec(&old).expect("json"),
        &nft,
    )
    .unwrap_err();
    assert_eq!(err.code, CODE_VERSION, "{}", err.msg);

    old["cniVersion"] = json!("1.0.0");
    let err = invoke(
        "ADD",
        &inv(),
        &serde_json::to_vec(&old).expect("json"),
        &nft,
    )
    .unwrap_err();
    assert_eq!(err.code, CODE_CONFIG);
    assert!(err.msg.contains("after the bridge plugin"), "{}", err.msg);

    let ports = json!([{"hostPort": 70000, "containerPort": 80}]);
    let err = invoke("ADD", &inv(), &config(ports), &nft).unwrap_err();
    assert_eq!(err.code, CODE_CONFIG);
    assert!(
        err.msg.contains("hostPort must be a port number"),
        "{}",
        err.msg
    );

    let ports = json!([{"hostPort": 80, "containerPort": 80, "hostIP": "::1"}]);
    let err = invoke("ADD", &inv(), &config(ports), &nft).unwrap_err();
    assert!(err.msg.contains("IPv4 only"), "{}", err.msg);

    let err = invoke("GET", &inv(), &config(Value::Null), &nft).unwrap_err();
    assert_eq!(err.code, CODE_ENV);
    assert!(nft.applied.lock().expect("lock").is_empty());
}

#[test]
fn version_names_the_supported_versions() {
    let out = invoke("VERSION", &inv(), b"", &FakeNft::default()).expect("VERSION");
    let v: Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(v["supportedVersions"], json!(["0.4.0", "1.0.0"]));
}

#[test]
fn check_finds_a_missing_dnat() {
    let chain = "table ip berthtest {\n\tchain c-abc123-eth0 {\n\t\ttcp dport 8080 dnat to 10.88.0.5:80\n\t}\n}\n";
    let nft = FakeNft {
        listings: vec![
            (
                "set ip berthtest bridges".to_owned(),
                "elements = { \"berth0\" }".to_owned(),
            ),
            (
                "chain ip berthtest c-abc123-eth0".to_owned(),
                chain.to_owned(),
            ),
        ],
        ..FakeNft::default()
    };
    let ports = json!([{"hostPort": 8080, "containerPort": 80}]);
    invoke("CHECK", &inv(), &config(ports), &nft).expect("CHECK");
    let ports = json!([{"hostPort": 9090, "containerPort": 80}]);
    let err = invoke("CHECK", &inv(), &config(ports), &nft).unwrap_err();
    assert!(err.msg.contains("9090/tcp"), "{}", err.msg);
}

#[test]
fn the_real_nft_applies_and_removes_a_containers_rules() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root for nftables");
        return;
    }
    let table = format!("berthnattest{}", std::process::id());
    let bridge = format!("bnt{}", std::process::id() % 100_000);
    let nft = NftExec;
    let _cleanup = DropTable(table.clone(), bridge.clone());
    let made = std::process::Command::new("ip")
        .args(["link", "add", &bridge, "type", "bridge"])
        .status()
        .expect("ip");
    assert!(made.success(), "ip link add {bridge}");
    let mut c: Value = serde_json::from_slice(&config(json!([
        {"hostPort": 18080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 18053, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"},
    ])))
    .expect("json");
    c["table"] = json!(table);
    c["bridge"] = json!(bridge);
    let c = serde_json::to_vec(&c).expect("json");
    invoke("ADD", &inv(), &c, &nft).expect("ADD");
    invoke("ADD", &inv(), &c, &nft).expect("a second ADD is a no-op");
    let listing = nft.list(&format!("table ip {table}")).expect("table");
    assert!(
        listing.contains("tcp dport 18080 dnat to 10.88.0.5:80")
            && listing.contains("ip daddr 127.0.0.1 udp dport 18053 dnat to 10.88.0.5:53"),
        "{listing}"
    );
    assert_eq!(listing.matches("dnat to").count(), 2, "{listing}");
    invoke("CHECK", &inv(), &c, &nft).expect("CHECK");
    invoke("DEL", &inv(), &c, &nft).expect("DEL");
    invoke("DEL", &inv(), &c, &nft).expect("a second DEL");
    let listing = nft.list(&format!("table ip {table}")).expect("table");
    assert!(!listing.contains("abc123"), "{listing}");
    remove_network(
        &nft,
        &table,
        &NetPart {
            bridge: bridge.clone(),
            subnet: ("10.88.0.0".parse().expect("ip"), 16),
        },
    )
    .expect("remove network");
    let listing = nft.list(&format!("table ip {table}")).expect("table");
    assert!(!listing.contains("10.88.0.0/16"), "{listing}");
}

/// Removes the test's table and interface even when an assertion fails.
struct DropTable(String, String);

impl Drop for DropTable {
    fn drop(&mut self) {
        // Best effort: the assertion that failed matters more.
        let _ = NftExec.apply(&format!("delete table ip {}\n", self.0));
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.1])
            .status();
    }
}
