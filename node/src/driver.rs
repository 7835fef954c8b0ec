//! The one shape in which the services drive the I/O-free cores of [`crate::logic`]:
//!
//! ```text
//! loop {
//!     while let Some(action) = machine.poll_action() { carry it out (a task sends its event) }
//!     if let Some(outcome) = machine.poll_outcome() { break outcome }
//!     match driver.next(machine.poll_timeout()).await {
//!         Next::Event(event) => machine.on_…(event),
//!         Next::Timeout => machine.on_timeout(now),
//!     }
//! }
//! ```
//!
//! A [`Driver`] owns the channel the tasks answer on and the machine's timer, re-armed only
//! when the machine asks for another time. Gets, hint replays and range repairs run in it; a
//! put keeps its own loop, since waiting on its own copy's durability is a branch of its
//! select there (one task and one message less per put).

use std::time::Instant;

use tokio::sync::mpsc;

/// What a [`Driver`] waited for.
pub enum Next<E> {
    /// A task's event.
    Event(E),
    /// The machine's timer fired.
    Timeout,
    /// Every sender is gone and no timer is set: nothing more can happen.
    Closed,
}

pub struct Driver<E> {
    tx: mpsc::Sender<E>,
    rx: mpsc::Receiver<E>,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// When the timer is set for, if it is.
    armed: Option<Instant>,
}

impl<E> Driver<E> {
    /// A driver whose tasks may have `capacity` events waiting.
    pub fn new(capacity: usize) -> Driver<E> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Driver {
            tx,
            rx,
            timer: Box::pin(tokio::time::sleep(std::time::Duration::ZERO)),
            armed: None,
        }
    }

    /// Where a task sends its event.
    pub fn sender(&self) -> mpsc::Sender<E> {
        self.tx.clone()
    }

    /// Waits for the next event, or until `wake` (if any) has come.
    pub async fn next(&mut self, wake: Option<Instant>) -> Next<E> {
        if let Some(at) = wake {
            if self.armed != Some(at) {
                self.armed = Some(at);
                self.timer
                    .as_mut()
                    .reset(tokio::time::Instant::from_std(at));
            }
        }
        tokio::select! {
            event = self.rx.recv() => match event {
                Some(event) => Next::Event(event),
                // The driver holds a sender itself: the channel never closes.
                None => Next::Closed,
            },
            () = self.timer.as_mut(), if wake.is_some() => {
                self.armed = None;
                Next::Timeout
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn events_come_in_order_and_the_timer_fires_when_asked() {
        let mut driver = Driver::new(4);
        let tx = driver.sender();
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        assert!(matches!(driver.next(None).await, Next::Event(1)));
        let wake = Instant::now() + Duration::from_millis(50);
        assert!(matches!(driver.next(Some(wake)).await, Next::Event(2)));
        assert!(matches!(driver.next(Some(wake)).await, Next::Timeout));
        // Without a time asked for, only events wake it.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            tx.send(3).await.unwrap();
        });
        assert!(matches!(driver.next(None).await, Next::Event(3)));
    }
}
