//! Cluster scenarios against Debian's etcd 3.4 as a 3-member cluster in network namespaces
//! (root). berth's store runs the same scenarios once it clusters (issue #7).

mod harness {
    pub mod faults;
    pub mod hosts;
    pub mod support;
}
