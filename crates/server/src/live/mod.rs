//! In-process fan-out of what just changed (new message, status, processed webhook). Browsers'
//! WebSockets, the bot and tests subscribe; the database's event log stays the source of truth, so
//! a subscriber that lags simply re-reads from the store.

pub mod ws;

use serde::Serialize;
use tokio::sync::broadcast;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notice {
    ConversationOpened {
        conversation_id: i64,
    },
    MessageCreated {
        conversation_id: i64,
        message_id: i64,
    },
    MessageStatus {
        conversation_id: i64,
        message_id: i64,
        status: String,
    },
    InboxProcessed {
        inbox_id: i64,
    },
    MediaUpdated {
        media_id: i64,
    },
    /// Something of the desk changed (assignment, transfer, presence...): the event log has news.
    DeskChanged,
}

#[derive(Clone)]
pub struct Live {
    tx: broadcast::Sender<Notice>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            tx: broadcast::channel(4096).0,
        }
    }
}

impl Live {
    pub fn publish(&self, notice: Notice) {
        // No subscriber is fine: nobody is watching.
        let _ = self.tx.send(notice);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.tx.subscribe()
    }
}
