//! The one rule that decides what a live message does to a stream standing at a position,
//! used by the stream's task and by the direct writer alike.

/// What a live message calls for on a stream whose last sent seq is `pos`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Order {
    /// Sent already (replayed, repaired or written directly).
    Skip,
    /// Messages before it are missing: repair them from history first.
    Gap,
    /// Next in line (or ephemeral, which has no position): send it.
    Send,
}

/// `seq` is the message's (`None`: ephemeral).
pub(crate) fn order(pos: i64, seq: Option<i64>) -> Order {
    match seq {
        None => Order::Send,
        Some(seq) if seq <= pos => Order::Skip,
        Some(seq) if seq > pos + 1 => Order::Gap,
        Some(_) => Order::Send,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_next_seq_is_sent() {
        assert_eq!(order(4, Some(5)), Order::Send);
        assert_eq!(order(4, Some(4)), Order::Skip);
        assert_eq!(order(4, Some(1)), Order::Skip);
        assert_eq!(order(4, Some(6)), Order::Gap);
        assert_eq!(order(4, None), Order::Send);
        assert_eq!(order(0, Some(1)), Order::Send);
    }
}
