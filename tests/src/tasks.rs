//! Task types the suite stores. Their typetag names (`conformance.*`) are stable: they are
//! what the rows keep.

use std::collections::BTreeMap;

use taskrow::chrono::{DateTime, Utc};
use taskrow::typetag;
use taskrow::{Task, TaskContext, TaskError, async_trait};

/// Does nothing: the task most cases store.
#[derive(
    Debug, Clone, Default, PartialEq, taskrow::serde::Serialize, taskrow::serde::Deserialize,
)]
#[serde(crate = "taskrow::serde")]
pub struct Noop {}

impl Noop {
    /// The stored type name.
    pub const TYPE: &'static str = "conformance.noop";
}

#[typetag::serde(name = "conformance.noop")]
#[async_trait]
impl Task for Noop {
    async fn run(&self, _ctx: &TaskContext) -> Result<(), TaskError> {
        Ok(())
    }
}

/// A second type, for filters by type name.
#[derive(
    Debug, Clone, Default, PartialEq, taskrow::serde::Serialize, taskrow::serde::Deserialize,
)]
#[serde(crate = "taskrow::serde")]
pub struct SendEmail {
    /// Recipient.
    pub to: String,
}

impl SendEmail {
    /// The stored type name.
    pub const TYPE: &'static str = "conformance.send_email";
}

#[typetag::serde(name = "conformance.send_email")]
#[async_trait]
impl Task for SendEmail {
    async fn run(&self, _ctx: &TaskContext) -> Result<(), TaskError> {
        Ok(())
    }
}

/// A payload with nesting, a list, optional fields, a map, a time and text that needs escaping:
/// what a real task carries.
#[derive(Debug, Clone, PartialEq, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct SyncOrder {
    /// Order id.
    pub order_id: i64,
    /// Who asked.
    pub operator: String,
    /// When the order was placed.
    pub placed_at: DateTime<Utc>,
    /// Order lines.
    pub lines: Vec<OrderLine>,
    /// An optional note.
    pub note: Option<String>,
    /// An optional field left empty.
    pub coupon: Option<String>,
    /// Free-form attributes.
    pub attributes: BTreeMap<String, String>,
}

/// One line of a [`SyncOrder`].
#[derive(Debug, Clone, PartialEq, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct OrderLine {
    /// Stock-keeping unit.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// Price in cents.
    pub price_cents: i64,
    /// Discount rate, if any.
    pub discount: Option<f64>,
}

impl SyncOrder {
    /// The stored type name.
    pub const TYPE: &'static str = "conformance.sync_order";

    /// A sample with every kind of field filled in.
    pub fn sample() -> Self {
        let placed_at = "2025-12-31T23:59:58.123456Z"
            .parse()
            .expect("a valid RFC 3339 time");
        Self {
            order_id: 9_007_199_254_740_993, // above 2^53: must not pass through an f64
            operator: "Zoë \"ops\" O'Brien \\ 运营 🚚\n".to_owned(),
            placed_at,
            lines: vec![
                OrderLine {
                    sku: "SKU-1".to_owned(),
                    quantity: 2,
                    price_cents: 1999,
                    discount: Some(0.15),
                },
                OrderLine {
                    sku: "SKU-2".to_owned(),
                    quantity: 1,
                    price_cents: -500,
                    discount: None,
                },
            ],
            note: Some("leave at the door; 50% off? no".to_owned()),
            coupon: None,
            attributes: BTreeMap::from([
                ("channel".to_owned(), "web".to_owned()),
                ("region".to_owned(), "eu-west".to_owned()),
            ]),
        }
    }
}

#[typetag::serde(name = "conformance.sync_order")]
#[async_trait]
impl Task for SyncOrder {
    async fn run(&self, _ctx: &TaskContext) -> Result<(), TaskError> {
        Ok(())
    }
}
