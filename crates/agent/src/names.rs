//! Generated container names (`adjective_noun`, as docker makes them).

const ADJECTIVES: &[&str] = &[
    "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry",
    "nifty", "proud", "quiet", "rapid", "sharp", "tender", "upbeat", "vivid", "witty", "zealous",
];
const NOUNS: &[&str] = &[
    "anchor",
    "barge",
    "buoy",
    "cargo",
    "dock",
    "ferry",
    "harbor",
    "hull",
    "keel",
    "lighthouse",
    "mast",
    "pier",
    "quay",
    "rudder",
    "sail",
    "schooner",
    "tide",
    "tug",
    "wharf",
    "yacht",
];

/// A random `adjective_noun`; after a few collisions (`attempt` > 3) a number is appended,
/// so the caller's retry loop always ends.
pub fn generate_name(attempt: u32) -> String {
    let adjective = ADJECTIVES[rand::random_range(0..ADJECTIVES.len())];
    let noun = NOUNS[rand::random_range(0..NOUNS.len())];
    if attempt > 3 {
        format!("{adjective}_{noun}{}", rand::random_range(0..10_000u32))
    } else {
        format!("{adjective}_{noun}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_are_valid_container_names() {
        for attempt in 0..10 {
            let name = generate_name(attempt);
            assert!(name.parse::<berth_types::ContainerName>().is_ok(), "{name}");
        }
    }
}
