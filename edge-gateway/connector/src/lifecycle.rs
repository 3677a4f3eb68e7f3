//! What signals and the transport's end do to the process: SIGHUP reloads the configuration;
//! the first SIGTERM or SIGINT starts a graceful drain (bounded by `grace-period`), a second one
//! exits at once. Pure: the driver in [`crate::run`] feeds it and acts on the answer.

/// A signal the connector reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGHUP.
    Hangup,
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

/// One input to the [`Lifecycle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A signal arrived.
    Signal(Signal),
    /// The transport's future completed (on its own, or after a drain).
    TransportFinished,
    /// The grace period after the first shutdown signal ran out.
    GraceExpired,
}

/// What the driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing changes.
    Continue,
    /// Reload and validate the configuration file now.
    Reload,
    /// Tell the transport to drain and start the grace timer.
    StartDrain,
    /// Stop now.
    Exit(ExitReason),
}

/// Why the connector stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// Every in-flight stream finished within the grace period.
    Drained,
    /// The grace period ran out with streams still open.
    GraceExpired,
    /// A second shutdown signal arrived during the drain.
    Forced,
    /// The transport stopped without being asked to (it logs why).
    TransportStopped,
}

/// Running, then draining, then gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lifecycle {
    /// Serving; no shutdown signal yet.
    #[default]
    Running,
    /// A shutdown signal arrived; in-flight streams are finishing.
    Draining,
    /// An [`Action::Exit`] was returned; later inputs change nothing.
    Exited,
}

impl Lifecycle {
    /// Feeds one input and returns what to do.
    pub fn handle(&mut self, input: Input) -> Action {
        let (next, action) = match (*self, input) {
            (Self::Exited, _) => (Self::Exited, Action::Continue),
            (Self::Running | Self::Draining, Input::Signal(Signal::Hangup)) => {
                (*self, Action::Reload)
            }
            (Self::Running, Input::Signal(Signal::Interrupt | Signal::Terminate)) => {
                (Self::Draining, Action::StartDrain)
            }
            (Self::Draining, Input::Signal(Signal::Interrupt | Signal::Terminate)) => {
                (Self::Exited, Action::Exit(ExitReason::Forced))
            }
            (Self::Running, Input::TransportFinished) => {
                (Self::Exited, Action::Exit(ExitReason::TransportStopped))
            }
            (Self::Draining, Input::TransportFinished) => {
                (Self::Exited, Action::Exit(ExitReason::Drained))
            }
            (Self::Draining, Input::GraceExpired) => {
                (Self::Exited, Action::Exit(ExitReason::GraceExpired))
            }
            // No grace timer runs before a drain.
            (Self::Running, Input::GraceExpired) => (Self::Running, Action::Continue),
        };
        *self = next;
        action
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(inputs: &[Input]) -> (Lifecycle, Vec<Action>) {
        let mut lifecycle = Lifecycle::default();
        let actions = inputs.iter().map(|i| lifecycle.handle(*i)).collect();
        (lifecycle, actions)
    }

    #[test]
    fn hangup_reloads_without_changing_state() {
        let (state, actions) = feed(&[Input::Signal(Signal::Hangup)]);
        assert_eq!((state, actions), (Lifecycle::Running, vec![Action::Reload]));
    }

    #[test]
    fn first_shutdown_signal_drains_and_the_transport_ending_exits() {
        for signal in [Signal::Terminate, Signal::Interrupt] {
            let (state, actions) = feed(&[Input::Signal(signal), Input::TransportFinished]);
            assert_eq!(state, Lifecycle::Exited);
            assert_eq!(
                actions,
                [Action::StartDrain, Action::Exit(ExitReason::Drained)]
            );
        }
    }

    #[test]
    fn second_shutdown_signal_exits_at_once() {
        let (_, actions) = feed(&[
            Input::Signal(Signal::Terminate),
            Input::Signal(Signal::Hangup),
            Input::Signal(Signal::Interrupt),
        ]);
        assert_eq!(
            actions,
            [
                Action::StartDrain,
                Action::Reload,
                Action::Exit(ExitReason::Forced)
            ]
        );
    }

    #[test]
    fn grace_expiry_exits_only_while_draining() {
        let (_, actions) = feed(&[
            Input::GraceExpired,
            Input::Signal(Signal::Terminate),
            Input::GraceExpired,
        ]);
        assert_eq!(
            actions,
            [
                Action::Continue,
                Action::StartDrain,
                Action::Exit(ExitReason::GraceExpired)
            ]
        );
    }

    #[test]
    fn transport_ending_unasked_exits_and_nothing_follows() {
        let (state, actions) = feed(&[
            Input::TransportFinished,
            Input::Signal(Signal::Terminate),
            Input::Signal(Signal::Hangup),
        ]);
        assert_eq!(state, Lifecycle::Exited);
        assert_eq!(
            actions,
            [
                Action::Exit(ExitReason::TransportStopped),
                Action::Continue,
                Action::Continue
            ]
        );
    }
}
