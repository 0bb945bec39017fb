"""python benchmarks/make_content_suite.py   # writes inkwell/evaluate/suites/content.jsonl (the same bytes every run)

The tasks of `inkwell eval --suite content` (docs/quality.md): every built-in template in English and Chinese, with
translations both ways (rewrite, mode=translate), over hand-written inputs a creator would bring (news paragraphs with names and numbers,
products, customer messages, tables), none of them a template's own few-shot example (a base model shown an
example would copy its answer; tests/evaluate/test_suite.py checks). Each task is one line: an id, the template,
its fields (or a facts table, `data`, for report and data-brief) and a cap on new tokens that leaves room for the
length the task asks for (so a full run fits on two CPU cores). Options rotate through the inputs deterministically (no randomness), and
tests/evaluate/test_suite.py checks that the shipped file is what this script writes.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "inkwell" / "evaluate" / "suites" / "content.jsonl"

# ---------------------------------------------------------------- inputs

NEWS_EN = [
    "Main Street's bakery reopened on Monday after three weeks of flood repairs, owner Maria Lopez said, and 40 "
    "regulars queued before 7 am for the first loaves.",
    "The Riverside library will stay open until 9 pm on weekdays from 1 March, after 1,200 residents signed a "
    "petition. Head librarian Tom Okafor said two extra staff have been hired to cover the evening shifts.",
    "Greenfield Council approved a plan on Tuesday to plant 500 street trees along Mill Road and Station Avenue "
    "over the next two years. The project will cost 85,000 pounds, paid from the council's climate fund.",
    "Brightwater Primary School raised 3,400 dollars at its spring fair on Saturday, enough to replace the "
    "playground's climbing frame. Headteacher Anna Berg thanked the 60 parents who ran the stalls.",
    "Northgate Hospital has opened a new children's ward with 24 beds and a play room. The ward cost 2.1 million "
    "euros and was funded partly by a local charity, the Harbour Trust, which raised 400,000 euros.",
    "Cyclists in Lakeside will get a 6 km protected bike lane along the waterfront by September. Mayor Priya Shah "
    "said the lane would connect the train station with the university campus.",
    "The Hillcrest farmers' market will move from Saturdays to Sundays in June, organiser Ben Carter said, "
    "because 18 of its 30 stallholders also sell at a larger market in Oakham on Saturdays.",
    "A heatwave pushed temperatures in Westport to 38 degrees on Thursday, the highest since 2019. The city opened "
    "five cooling centres and asked residents to check on elderly neighbours.",
    "Harbour Ferries will add a 6 am crossing between Portby and Elm Island from 15 May, after commuters complained "
    "that the first boat, at 7.30 am, made them late for work.",
    "The Castleford museum welcomed its 100,000th visitor of the year on Friday, a month earlier than last year. "
    "Director Lena Fischer credited the new dinosaur gallery, which opened in April.",
    "Students at Eastfield College built a solar-powered charging bench that can charge eight phones at once. The "
    "bench, placed outside the student union, cost 2,500 dollars to build.",
    "Water supplies in the village of Oakridge were cut for 14 hours on Wednesday after a main burst under Church "
    "Lane. Engineers from Valley Water restored supplies shortly after midnight.",
]
NEWS_ZH = [
    "本市今年新开通了三条公交线路，连接城东新区和火车站，首班车早上六点发车。",
    "市图书馆从三月起延长开放时间，工作日开放到晚上九点，新增两名工作人员负责晚间服务。",
    "东湖区计划在两年内沿滨江路种植五百棵行道树，项目总投资约八十五万元。",
    "今年五一假期，全市主要景区共接待游客一百二十万人次，比去年同期增长百分之十五。",
    "市第一中学的学生设计了一款太阳能充电长椅，可以同时为八部手机充电，造价约两万元。",
    "受暴雨影响，城西地铁站周三关闭了六个小时，地铁公司派出三十辆接驳公交车疏散乘客。",
]
PRODUCTS = [
    {
        "product": "Starlit solar path lights",
        "features": ["charge in daylight", "8 hours of light", "no wiring"],
        "offer": "20% off this week",
        "audience": "people with small gardens",
    },
    {
        "product": "a bamboo water bottle",
        "features": ["keeps drinks cold for 24 hours", "leak-proof lid", "plastic-free"],
        "offer": "free engraving",
        "audience": "hikers",
    },
    {
        "product": "Nimbus noise-cancelling headphones",
        "features": ["30-hour battery", "folds flat", "quick charge"],
        "offer": "free carry case with every order",
        "audience": "commuters",
    },
    {
        "product": "a cast-iron skillet",
        "features": ["pre-seasoned", "oven safe", "lasts for decades"],
        "offer": "free shipping until Sunday",
        "audience": "home cooks",
    },
    {
        "product": "Trailhead waterproof hiking boots",
        "features": ["waterproof membrane", "grippy sole", "ankle support"],
        "offer": "15% off for members",
        "audience": "weekend walkers",
    },
    {
        "product": "a linen shirt",
        "features": ["breathable", "two chest pockets", "relaxed fit"],
        "offer": "buy two, get one free",
        "audience": "summer travellers",
    },
    {
        "product": "Morning Ritual coffee subscription",
        "features": ["freshly roasted beans", "delivered every two weeks", "pause any time"],
        "offer": "first bag free",
        "audience": "coffee lovers",
    },
    {
        "product": "a kids' reading lamp",
        "features": ["warm light", "timer switches off after 30 minutes", "USB charging"],
        "offer": "10% off school starter sets",
        "audience": "parents of young children",
    },
    {
        "product": "Pocket Planner notebook",
        "features": ["undated pages", "lay-flat binding", "recycled paper"],
        "offer": "a free pen with every notebook",
        "audience": "students",
    },
    {
        "product": "a standing desk converter",
        "features": ["raises in two seconds", "fits a laptop and a monitor", "no assembly"],
        "offer": "30-day free returns",
        "audience": "people working from home",
    },
    {
        "product": "Seaside sunscreen SPF 50",
        "features": ["reef-safe formula", "water resistant for 80 minutes", "no white cast"],
        "offer": "two for the price of one",
        "audience": "families at the beach",
    },
    {
        "product": "a 2-slice toaster",
        "features": ["wide slots", "defrost setting", "removable crumb tray"],
        "offer": "5 pounds off this weekend",
        "audience": "busy households",
    },
    {
        "product": "a beginner's watercolour set",
        "features": ["24 colours", "three brushes", "travel tin"],
        "offer": "free online lesson",
        "audience": "new painters",
    },
]
CUSTOMERS = [
    (
        "The lamp I ordered arrived with a cracked shade. I wanted it for my daughter's birthday.",
        "a new shade ships today by express at no cost; please keep the cracked one",
        "Brightlamp",
        "Nina",
    ),
    (
        "I was charged twice for my subscription this month. Please fix this.",
        "the second charge of 12 dollars will be refunded within 5 working days",
        "StreamBox",
        "Priya",
    ),
    (
        "Can I add a gift message to my order? It's a present for my sister.",
        "a gift message can be added until the order is packed; reply with the text you want",
        "",
        "",
    ),
    (
        "The app keeps logging me out every time I close it. It's really annoying.",
        "our next update, due on Friday, fixes the log-out problem; until then, turning off battery saver helps",
        "Notely",
        "Jordan",
    ),
    (
        "My parcel says delivered but I never got it.",
        "we have opened an investigation with the courier and will reply within 48 hours",
        "Parcelpoint",
        "",
    ),
    (
        "I'd like to cancel my gym membership. How do I do that?",
        "the membership can be cancelled online under Account settings; it stays active until the end of the month",
        "FitHub",
        "Alex",
    ),
    (
        "The jacket I bought is too small. Can I swap it for a larger size?",
        "we will send a prepaid return label today and ship the larger size as soon as the return is scanned",
        "Northwear",
        "Mia",
    ),
    (
        "Your website says the blender is in stock but my order was cancelled.",
        "the stock count was wrong; we will email you the moment it is back, with a 10% discount code",
        "KitchenCo",
        "",
    ),
    (
        "I waited 40 minutes on the phone yesterday and nobody answered.",
        "a team member will call you back today between 2 pm and 4 pm",
        "City Energy",
        "Leo",
    ),
    (
        "The hotel room we booked for Saturday has no sea view, although we paid for one.",
        "we will move you to a sea-view room on Sunday and refund the difference for Saturday night",
        "Bayview Hotel",
        "Grace",
    ),
    (
        "My train was cancelled and I missed my connection. Can I get my money back?",
        "you can claim a full refund through the Delay Repay form on our website",
        "Southern Rail",
        "",
    ),
    (
        "The coffee machine I bought three months ago has stopped heating the water.",
        "it is under warranty; we will collect it on Thursday and repair or replace it free of charge",
        "BrewMaster",
        "Noah",
    ),
    (
        "I forgot my password and the reset email never arrives.",
        "we have sent a new reset link from a different address; please also check the spam folder",
        "Lumen Bank",
        "Ella",
    ),
]
QUIZZES = [
    ("the seasons", "beginner", ""),
    ("decimals", "grade 5", ""),
    ("the solar system", "primary school", ""),
    ("photosynthesis", "grade 7", ""),
    ("the French Revolution", "high school", ""),
    ("basic first aid", "adult beginners", ""),
    (
        "volcanoes",
        "grade 5",
        "A volcano is an opening in the Earth's crust. Magma rises from below, and when it reaches the surface it "
        "is called lava. Volcanoes can be active, dormant or extinct.",
    ),
    ("healthy eating", "beginner", ""),
    ("the human heart", "grade 6", ""),
    (
        "recycling",
        "primary school",
        "Paper, glass, metal cans and many plastics can be recycled. Recycling saves energy and raw materials, and "
        "it keeps waste out of landfill.",
    ),
    ("world capitals", "beginner", ""),
    ("the Roman Empire", "grade 8", ""),
    ("electricity at home", "grade 6", ""),
]
REWRITES = [
    ("me and him was going to the meeting but it were cancelled at the last minute", "grammar"),
    ("Me and my team has finished the report and we sended it to the manager yesterday.", "grammar"),
    ("The meeting which was planned for Monday it has been moved on Wednesday because of the holiday.", "grammar"),
    (
        "This vacuum cleaner it is very good at cleaning carpets and also it is very quiet when you are using it in "
        "the evening.",
        "polish",
    ),
    (
        "We are writing to inform you that due to the fact that there has been an increase in the cost of materials, "
        "the price of our standard delivery service will be going up by 2 dollars starting from the 1st of June.",
        "shorten",
    ),
    (
        "In order to be able to make the most of your visit to the museum, it is recommended that you book your "
        "tickets in advance online, as there are often very long queues at the entrance, especially at weekends.",
        "shorten",
    ),
    ("Thanks for coming to our open day. We hope you enjoyed the tour of the garden.", "expand"),
    ("The shop is closed on Monday for a stock take.", "expand"),
    ("Please send me the invoice by Friday.", "tone"),
    ("You have not paid the last two bills. Pay now or we will close your account.", "tone"),
    (
        "the new cafe on park road is good, the coffee is nice and the cakes is homemade, prices are ok",
        "polish",
    ),
    ("Hi team, the printer on floor 2 is broken again, dont use it till IT fix it.", "polish"),
    ("Due to unforeseen circumstances, tonight's concert by the Riverside Band has been postponed.", "tone"),
]
TONES = ["formal", "friendly", "playful"]
DESTINATIONS = [
    ("Porto", "a weekend", ["food", "wine cellars"], "mid-range"),
    ("Seoul", "3 days", ["markets", "palaces"], "budget"),
    ("the Scottish Highlands", "5 days", ["hiking", "castles"], "any"),
    ("Barcelona", "a long weekend", ["architecture", "beaches"], "mid-range"),
    ("Iceland's Ring Road", "a week", ["waterfalls", "hot springs"], "any"),
    ("Marrakech", "4 days", ["markets", "food"], "budget"),
    ("Vienna", "a weekend", ["music", "coffee houses"], "luxury"),
    ("Cape Town", "5 days", ["nature", "wine"], "mid-range"),
    ("Copenhagen", "2 days", ["cycling", "design"], "any"),
    ("Hanoi", "3 days", ["street food", "history"], "budget"),
    ("New York City", "4 days", ["museums", "parks"], "any"),
    ("the Amalfi Coast", "a week", ["beaches", "villages"], "luxury"),
    ("Edinburgh", "2 days", ["history", "walking"], "mid-range"),
]
STORIES_EN = [
    ("a lighthouse keeper finds a message in a bottle", "mystery", ["Ada"]),
    ("a tortoise enters a race against the wind", "fable", ["Tully the tortoise"]),
    ("a robot librarian on a moon base finds a book no one has read", "science-fiction", []),
    ("a girl and her grandfather build a kite for the village festival", "general", ["Mei", "Grandpa Lin"]),
    ("a lost puppy finds its way home through the city at night", "bedtime", ["Biscuit"]),
    ("two rival bakers must work together to save the town fair", "general", ["Rosa", "Hugo"]),
    ("a boy discovers that his school's old piano plays by itself", "mystery", ["Theo"]),
    ("a young dragon is afraid of fire", "fairy-tale", ["Ember"]),
]
STORIES_ZH = [
    ("一只小狗第一次去海边", "bedtime", ["豆豆"]),
    ("一位老渔夫和一只海鸥成了朋友", "general", ["老陈"]),
    ("森林里的动物们一起准备过冬", "fable", []),
    ("一个机器人想学会画画", "science-fiction", ["小白"]),
    ("小女孩在外婆家的阁楼里发现了一张旧地图", "adventure", ["朵朵"]),
]
POEMS_EN = [
    ("autumn rain", "free", "wistful"),
    ("a city at dawn", "free", ""),
    ("the first snow", "haiku", ""),
    ("an old oak tree", "haiku", ""),
    ("the sea", "sonnet", "calm"),
    ("a kitchen on Sunday morning", "free", "warm"),
    ("the last train home", "free", "lonely"),
]
POEMS_ZH = [
    ("秋雨", "jueju", ""),
    ("春天的江边", "jueju", "喜悦"),
    ("思乡", "jueju", ""),
    ("月夜", "lushi", ""),
    ("山中古寺", "jueju", "宁静"),
    ("冬日初雪", "lushi", ""),
]
SOCIAL_EN = [
    ("our deli's new breakfast bagels, ready at 7 am", "x", "friendly", "Grab one on your way"),
    ("what our team learned from a month without internal email", "linkedin", "professional", ""),
    ("our new autumn menu with pumpkin soup and apple pie", "instagram", "playful", "Book a table"),
    ("the library's free coding club for teenagers on Thursdays", "facebook", "informative", "Sign up at the desk"),
    ("a beach clean-up this Saturday at 10 am", "threads", "excited", "Bring gloves"),
    ("our shop's 10th birthday sale", "x", "excited", "Visit us this weekend"),
    ("tips for staying focused when working from home", "linkedin", "informative", ""),
    ("the opening of our second cafe on Park Road", "instagram", "friendly", ""),
]
SOCIAL_ZH = [
    ("社区游泳馆暑假推出儿童游泳课", "weibo", "friendly"),
    ("我们的新品桂花拿铁上市了", "xiaohongshu", "playful"),
    ("周六上午十点的海滩清洁活动", "weibo", "excited"),
    ("公司搬到新办公室的第一天", "weibo", "friendly"),
    ("秋天去郊外徒步的几个小建议", "xiaohongshu", "informative"),
]
REVIEWS = [
    ("a 2-slice toaster", 4, ["toasts evenly", "wide slots"], ["loud timer"], "used it every morning for a month"),
    (
        "Nimbus noise-cancelling headphones",
        5,
        ["great noise cancelling", "long battery"],
        [],
        "wore them on a 9-hour flight",
    ),
    ("a cast-iron skillet", 4, ["heats evenly", "goes in the oven"], ["heavy"], ""),
    ("a budget smartwatch", 2, ["cheap", "bright screen"], ["step count is wrong", "battery lasts a day"], ""),
    (
        "Trailhead waterproof hiking boots",
        5,
        ["dry feet in heavy rain", "comfortable from day one"],
        [],
        "walked 60 km in them",
    ),
    ("a robot vacuum", 3, ["quiet", "easy app"], ["gets stuck under the sofa"], "use it in a small flat"),
    ("a linen shirt", 4, ["cool on hot days", "nice colour"], ["creases easily"], ""),
    ("a kids' reading lamp", 5, ["warm light", "timer works well"], [], "my daughter uses it every night"),
    ("an electric kettle", 1, ["looks nice"], ["leaked after two weeks", "slow to boil"], ""),
    ("a yoga mat", 4, ["good grip", "easy to clean"], ["smelled for a few days"], "use it three times a week"),
    ("a beginner's watercolour set", 3, ["bright colours", "handy tin"], ["brushes shed hairs"], ""),
    (
        "a standing desk converter",
        4,
        ["sturdy", "quick to raise"],
        ["takes up most of the desk"],
        "work from home daily",
    ),
]
NEWS_FACTS = [
    (
        "The Riverside library extends weekday opening to 9 pm from 1 March; 1,200 residents signed a petition; "
        "two extra staff hired",
        "Library to stay open later",
        "Riverside",
        "Head librarian Tom Okafor: 'People asked, and we listened.'",
    ),
    (
        "Greenfield Council approves 500 street trees on Mill Road and Station Avenue; planting over two years; "
        "cost 85,000 pounds from the climate fund",
        "",
        "Greenfield",
        "",
    ),
    (
        "Brightwater Primary School fair raised 3,400 dollars on Saturday; money replaces the playground climbing "
        "frame; 60 parents ran stalls",
        "",
        "",
        "Headteacher Anna Berg: 'Our parents made this happen.'",
    ),
    (
        "Northgate Hospital opens a children's ward with 24 beds; cost 2.1 million euros; Harbour Trust charity "
        "raised 400,000 euros",
        "New children's ward opens",
        "Northgate",
        "",
    ),
    (
        "Lakeside gets a 6 km protected bike lane on the waterfront by September; links the station and the university",
        "",
        "Lakeside",
        "Mayor Priya Shah: 'This is a safer way to get around.'",
    ),
    (
        "Hillcrest farmers' market moves from Saturdays to Sundays in June; 18 of 30 stallholders also sell in Oakham on Saturdays",
        "",
        "Hillcrest",
        "",
    ),
    (
        "Westport reached 38 degrees on Thursday, the highest since 2019; five cooling centres opened",
        "Heatwave hits Westport",
        "Westport",
        "",
    ),
    (
        "Harbour Ferries adds a 6 am crossing between Portby and Elm Island from 15 May; the first boat was at 7.30 am",
        "",
        "Portby",
        "",
    ),
    (
        "Castleford museum welcomed its 100,000th visitor of the year on Friday, a month earlier than last year; new dinosaur gallery opened in April",
        "",
        "Castleford",
        "Director Lena Fischer: 'The dinosaurs did it.'",
    ),
    (
        "Eastfield College students built a solar charging bench for eight phones; it cost 2,500 dollars; placed outside the student union",
        "",
        "",
        "",
    ),
    (
        "Oakridge village lost water for 14 hours on Wednesday after a main burst under Church Lane; Valley Water restored supply after midnight",
        "Water back in Oakridge",
        "Oakridge",
        "",
    ),
    (
        "Main Street bakery reopened on Monday after three weeks of flood repairs; 40 regulars queued before 7 am",
        "",
        "",
        "Owner Maria Lopez: 'We missed our customers.'",
    ),
]
TABLES_EN = [
    (
        "Monthly online orders",
        [
            {"month": "January", "orders": 1200, "revenue": 18400},
            {"month": "February", "orders": 1350, "revenue": 20100},
            {"month": "March", "orders": 1610, "revenue": 24900},
        ],
    ),
    (
        "Sales by region, Q3",
        [
            {"region": "North", "sales": 420},
            {"region": "South", "sales": 380},
            {"region": "East", "sales": 510},
            {"region": "West", "sales": 290},
        ],
    ),
    (
        "Swimming pool visits by site",
        [
            {"site": "Northside", "visits": 8200},
            {"site": "Harbour", "visits": 3100},
            {"site": "Parkview", "visits": 2600},
        ],
    ),
    (
        "Weekly step counts",
        [
            {"week": 1, "steps": 52000},
            {"week": 2, "steps": 61000},
            {"week": 3, "steps": 58500},
            {"week": 4, "steps": 70200},
        ],
    ),
    (
        "Cafe sales by drink",
        [
            {"drink": "Latte", "cups": 940},
            {"drink": "Cappuccino", "cups": 610},
            {"drink": "Tea", "cups": 330},
            {"drink": "Hot chocolate", "cups": 210},
        ],
    ),
    (
        "Rainfall in millimetres",
        [
            {"city": "Westport", "rainfall": 81},
            {"city": "Lakeside", "rainfall": 64},
            {"city": "Oakham", "rainfall": 102},
        ],
    ),
    (
        "Team goals this season",
        [
            {"team": "Reds", "goals": 41},
            {"team": "Blues", "goals": 35},
            {"team": "Greens", "goals": 28},
        ],
    ),
    (
        "Bike rentals per year",
        [
            {"year": 2022, "rentals": 15400},
            {"year": 2023, "rentals": 18900},
            {"year": 2024, "rentals": 23100},
        ],
    ),
]
TABLES_ZH = [
    (
        "各区销售额",
        [{"地区": "华东", "销售额": 520}, {"地区": "华南", "销售额": 430}, {"地区": "华北", "销售额": 390}],
    ),
    (
        "每月新增会员",
        [{"月份": "一月", "新会员": 120}, {"月份": "二月", "新会员": 150}, {"月份": "三月", "新会员": 210}],
    ),
    (
        "图书馆借阅量",
        [{"分馆": "中心馆", "借阅": 6800}, {"分馆": "东城馆", "借阅": 2900}, {"分馆": "西城馆", "借阅": 2400}],
    ),
    (
        "各饮品销量",
        [{"饮品": "拿铁", "杯数": 860}, {"饮品": "美式", "杯数": 540}, {"饮品": "奶茶", "杯数": 720}],
    ),
    (
        "各城市年降雨量",
        [{"城市": "杭州", "降雨量": 1450}, {"城市": "北京", "降雨量": 580}, {"城市": "广州", "降雨量": 1720}],
    ),
]

# Chinese inputs of the templates that write Chinese since every template takes `language` (none of them a
# template's own worked example), and texts to translate (rewrite, mode=translate: `language` is the target).
PRODUCTS_ZH = [
    {
        "product": "星光太阳能庭院灯",
        "features": ["白天自动充电", "可照明八小时", "无需布线"],
        "offer": "本周八折",
        "audience": "有小院子的家庭",
    },
    {
        "product": "竹制保温水杯",
        "features": ["保冷二十四小时", "密封防漏", "不含塑料"],
        "offer": "免费刻字",
        "audience": "喜欢徒步的人",
    },
    {
        "product": "云朵降噪耳机",
        "features": ["续航三十小时", "可以折叠", "快速充电"],
        "offer": "下单送收纳盒",
        "audience": "每天通勤的上班族",
    },
    {
        "product": "铸铁煎锅",
        "features": ["出厂已开锅", "可以进烤箱", "经久耐用"],
        "offer": "周日前包邮",
        "audience": "喜欢下厨的人",
    },
]
CUSTOMERS_ZH = [
    (
        "我买的台灯收到时灯罩裂了，本来是给女儿的生日礼物。",
        "今天用快递免费补发一个新灯罩，裂的那个不用寄回",
        "明亮灯饰",
        "小周",
    ),
    ("这个月的会员费被扣了两次，请帮我处理。", "多扣的三十元会在五个工作日内退回原账户", "影音盒子", "李娜"),
    ("我想取消健身房会员，应该怎么操作？", "可以在应用的账户设置里取消，会员资格保留到本月底", "活力健身", ""),
    ("打了四十分钟客服电话都没人接。", "今天下午两点到四点之间会有同事给您回电", "城市燃气", "陈磊"),
]
REVIEWS_ZH = [
    ("一台双槽烤面包机", 4, ["烤得均匀", "槽口宽"], ["定时器声音大"], "每天早上都用"),
    ("一款入门智能手表", 2, ["便宜", "屏幕亮"], ["计步不准", "续航只有一天"], ""),
    ("一台扫地机器人", 3, ["安静", "应用好用"], ["常卡在沙发底下"], "家里面积不大"),
    ("一张瑜伽垫", 5, ["防滑", "好清洁"], [], "每周练三次"),
]
NEWS_FACTS_ZH = [
    (
        "市图书馆从三月一日起工作日开放到晚上九点；一千二百名市民联名建议；新增两名工作人员",
        "市图书馆延长开放时间",
        "",
        "馆长刘洋说：“市民提出了建议，我们就做出改变。”",
    ),
    ("东湖区两年内沿滨江路种植五百棵行道树；项目总投资八十五万元；资金来自区绿化基金", "", "东湖", ""),
    ("市第一中学学生设计了太阳能充电长椅；可同时为八部手机充电；造价约两万元；放在学校图书馆门口", "", "", ""),
    ("城西地铁站因暴雨周三关闭六个小时；地铁公司派出三十辆接驳公交车", "暴雨致城西地铁站关闭", "", ""),
]
DESTINATIONS_ZH = [
    ("西安", "三天", ["历史", "小吃"], "budget"),
    ("青岛", "一个周末", ["海边", "啤酒"], "mid-range"),
    ("桂林", "四天", ["山水", "徒步"], "any"),
    ("苏州", "两天", ["园林", "老街"], "luxury"),
]
QUIZZES_ZH = [
    ("四季的变化", "入门", ""),
    ("小数的加减法", "五年级", ""),
    ("太阳系", "小学", ""),
    (
        "火山",
        "五年级",
        "火山是地壳上的开口。地下的岩浆上升，到达地面后就叫熔岩。火山可以分为活火山、休眠火山和死火山。",
    ),
]
REWRITES_ZH = [
    ("我和他本来要去开会的，但是会议在最后一分钟被取消了的。", "grammar"),
    ("这台吸尘器它清洁地毯的效果是非常好的，而且它在晚上使用的时候声音也是非常小的。", "polish"),
    (
        "为了能够让您在参观博物馆的时候有更好的体验，我们建议您提前在网上预约门票，因为入口处经常会排很长的队，"
        "尤其是在周末的时候。",
        "shorten",
    ),
    ("感谢大家来参加我们的开放日，希望大家喜欢花园的参观。", "expand"),
]
TRANSLATE_TO_ZH = [
    "The farmers' market moves to Sundays in June and opens at 8 am.",
    "Tickets for the school concert cost 5 pounds and are on sale at the office until Friday.",
    "Our cafe will be closed from 24 to 26 December and reopens on 27 December with a new winter menu.",
    "Please keep your bags with you at all times; unattended luggage may be removed.",
]
TRANSLATE_TO_EN = [
    "本店每天早上八点开门，晚上十点关门。",
    "博物馆每周一闭馆，其他日子免费参观，但需要提前预约。",
    "新开的社区图书馆有三千多本书，欢迎大家来借阅。",
    "因为道路施工，12路公交车本周末暂停运行。",
]

# ---------------------------------------------------------------- tasks


def cap(words: float, per_word: float = 1.6, floor: int = 48) -> int:
    """New tokens for a piece of about `words` words: room for 1.5x the length plus a little (a word is about
    1.3 tokens in English; a Chinese character one to two), so the length check, not the cap, decides. Rounded up
    to a multiple of 32."""
    tokens = max(floor, int(words * per_word) + 24)
    return -(-tokens // 32) * 32


def task(template: str, lang: str, number: int, fields: dict, max_new_tokens: int, data: list | None = None) -> dict:
    row: dict = {"id": f"{template}-{lang}-{number:02d}", "template": template, "fields": fields}
    if data is not None:
        row["data"] = data
    row["settings"] = {"max_new_tokens": max_new_tokens}
    return row


def tasks() -> list[dict]:
    out: list[dict] = []
    styles = ["news", "catchy", "seo", "question"]
    for i, text in enumerate(NEWS_EN[:8]):
        out.append(task("headline", "en", i + 1, {"text": text, "style": styles[i % 4], "max_words": 12}, 32))
    for i, text in enumerate(NEWS_ZH[:5]):
        fields = {"text": text, "style": styles[i % 4], "max_words": 12, "language": "zh"}
        out.append(task("headline", "zh", i + 1, fields, 48))
    for i, text in enumerate(NEWS_EN[4:12]):
        fields = {"text": text, "sentences": 1 + i % 2, "format": "bullets" if i % 3 == 2 else "paragraph"}
        out.append(task("summary", "en", i + 1, fields, 96))
    for i, text in enumerate(NEWS_ZH[1:6]):
        out.append(task("summary", "zh", i + 1, {"text": text, "sentences": 1, "language": "zh"}, 96))
    for i, (facts, headline, dateline, quote) in enumerate(NEWS_FACTS):
        words = (100, 120, 150)[i % 3]
        fields = {"facts": facts, "headline": headline, "dateline": dateline, "quote": quote, "words": words}
        out.append(task("news-article", "en", i + 1, fields, cap(words)))
    for i, (text, mode) in enumerate(REWRITES):
        fields = {"text": text, "mode": mode}
        if mode == "tone":
            fields["tone"] = TONES[i % 3]
        out.append(task("rewrite", "en", i + 1, fields, cap(len(text.split()) * (3 if mode == "expand" else 1.6))))
    tones = ["empathetic", "friendly", "formal", "concise"]
    for i, (message, resolution, company, agent) in enumerate(CUSTOMERS):
        fields = {"message": message, "resolution": resolution, "company": company, "agent": agent}
        out.append(task("customer-service-reply", "en", i + 1, {**fields, "tone": tones[i % 4]}, 200))
    ad_tones = ["persuasive", "playful", "urgent", "premium", "friendly"]
    for i, p in enumerate(PRODUCTS):
        words = (30, 50, 60)[i % 3]
        fields = {"product": p["product"], "offer": p["offer"], "audience": p["audience"], "tone": ad_tones[i % 5]}
        fields.update({"words": words, "call_to_action": ["Shop now", "Order today", "Try it"][i % 3]})
        out.append(task("ad-copy", "en", i + 1, fields, cap(words)))
    purposes = ["promotion", "launch", "newsletter", "welcome", "event", "win-back"]
    brands = ["Starlit", "Leafline", "Nimbus Audio", "Ironware", "Trailhead", "Loom & Co"]
    for i, p in enumerate(PRODUCTS):
        words = (80, 100)[i % 2]
        fields = {"product": p["product"], "purpose": purposes[i % 6], "brand": brands[i % 6], "words": words}
        fields.update({"offer": p["offer"] if i % 4 != 3 else "", "call_to_action": ["See the offers", ""][i % 2]})
        out.append(task("marketing-email", "en", i + 1, fields, cap(words + 30)))
    pd_tones = ["friendly", "luxury", "playful", "technical", "minimal"]
    for i, p in enumerate(PRODUCTS):
        words = (50, 70, 90)[i % 3]
        fields = {"product": p["product"], "features": p["features"], "audience": p["audience"]}
        out.append(
            task("product-description", "en", i + 1, {**fields, "tone": pd_tones[i % 5], "words": words}, cap(words))
        )
    for i, (product, rating, pros, cons, notes) in enumerate(REVIEWS):
        words = (80, 100)[i % 2]
        fields = {"product": product, "rating": rating, "pros": pros, "cons": cons, "notes": notes, "words": words}
        out.append(task("product-review", "en", i + 1, fields, cap(words)))
    for i, (topic, platform, tone, action) in enumerate(SOCIAL_EN):
        fields = {"topic": topic, "platform": platform, "tone": tone, "call_to_action": action}
        out.append(task("social-post", "en", i + 1, {**fields, "hashtags": i % 3 != 1}, 120))
    for i, (topic, platform, tone) in enumerate(SOCIAL_ZH):
        fields = {"topic": topic, "platform": platform, "tone": tone, "language": "zh"}
        out.append(task("social-post", "zh", i + 1, fields, 160))
    for i, (premise, genre, characters) in enumerate(STORIES_EN):
        words = (120, 150)[i % 2]
        fields = {"premise": premise, "genre": genre, "characters": characters, "words": words}
        out.append(task("story", "en", i + 1, fields, cap(words)))
    for i, (premise, genre, characters) in enumerate(STORIES_ZH):
        words = (120, 150)[i % 2]
        fields = {"premise": premise, "genre": genre, "characters": characters, "words": words, "language": "zh"}
        out.append(task("story", "zh", i + 1, fields, cap(words, per_word=2.0)))
    for i, (topic, form, mood) in enumerate(POEMS_EN):
        out.append(
            task("poem", "en", i + 1, {"topic": topic, "form": form, "mood": mood}, 200 if form == "sonnet" else 120)
        )
    for i, (topic, form, mood) in enumerate(POEMS_ZH):
        fields = {"topic": topic, "form": form, "mood": mood, "language": "zh"}
        out.append(task("poem", "zh", i + 1, fields, 120 if form == "lushi" else 80))
    for i, (destination, duration, interests, budget) in enumerate(DESTINATIONS):
        words = (120, 150)[i % 2]
        fields = {"destination": destination, "duration": duration, "interests": interests, "budget": budget}
        out.append(task("travel-guide", "en", i + 1, {**fields, "words": words}, cap(words)))
    for i, (topic, level, text) in enumerate(QUIZZES):
        questions, options = 2 + i % 2, (4, 3, 4)[i % 3]
        fields = {"topic": topic, "level": level, "num_questions": questions, "num_options": options, "text": text}
        out.append(task("lesson-quiz", "en", i + 1, fields, 110 * questions + 40))
    for i, (title, rows) in enumerate(TABLES_EN[:7]):
        words = (80, 100)[i % 2]
        out.append(task("report", "en", i + 1, {"title": title, "words": words}, cap(words), data=rows))
    for i, (title, rows) in enumerate(TABLES_ZH):
        words = 60
        out.append(task("report", "zh", i + 1, {"title": title, "words": words, "language": "zh"}, 200, data=rows))
    for i, (title, rows) in enumerate(TABLES_EN):
        out.append(task("data-brief", "en", i + 1, {"title": title, "points": 2 + i % 2}, 120, data=rows))
    for i, (title, rows) in enumerate(TABLES_ZH):
        out.append(task("data-brief", "zh", i + 1, {"title": title, "points": 3, "language": "zh"}, 160, data=rows))
    return out + chinese_tasks()


def chinese_tasks() -> list[dict]:
    """The templates that write Chinese since every template takes `language`, and translations both ways (after
    the others, so the earlier tasks keep their place in the file)."""
    out: list[dict] = []
    zh = {"language": "zh"}
    ad_tones = ["persuasive", "playful", "premium", "friendly"]
    for i, p in enumerate(PRODUCTS_ZH):
        words = (40, 50, 60)[i % 3]
        fields = {"product": p["product"], "offer": p["offer"], "audience": p["audience"], "tone": ad_tones[i]}
        fields.update({"words": words, "call_to_action": ["立即购买", "马上下单", "快来试试"][i % 3], **zh})
        out.append(task("ad-copy", "zh", i + 1, fields, cap(words, per_word=2.0)))
    purposes = ["promotion", "launch", "event", "win-back"]
    brands = ["星光", "竹语", "云朵音频", "铁匠厨房"]
    for i, p in enumerate(PRODUCTS_ZH):
        words = (80, 100)[i % 2]
        fields = {"product": p["product"], "purpose": purposes[i], "brand": brands[i], "words": words, **zh}
        fields.update({"offer": p["offer"] if i != 2 else "", "call_to_action": ["查看优惠", ""][i % 2]})
        out.append(task("marketing-email", "zh", i + 1, fields, cap(words + 30, per_word=2.0)))
    for i, p in enumerate(PRODUCTS_ZH):
        words = (50, 70)[i % 2]
        fields = {"product": p["product"], "features": p["features"], "audience": p["audience"], "words": words}
        out.append(task("product-description", "zh", i + 1, {**fields, **zh}, cap(words, per_word=2.0)))
    tones = ["empathetic", "friendly", "formal", "concise"]
    for i, (message, resolution, company, agent) in enumerate(CUSTOMERS_ZH):
        fields = {"message": message, "resolution": resolution, "company": company, "agent": agent}
        out.append(task("customer-service-reply", "zh", i + 1, {**fields, "tone": tones[i], **zh}, 200))
    for i, (product, rating, pros, cons, notes) in enumerate(REVIEWS_ZH):
        words = (80, 100)[i % 2]
        fields = {"product": product, "rating": rating, "pros": pros, "cons": cons, "notes": notes, "words": words}
        out.append(task("product-review", "zh", i + 1, {**fields, **zh}, cap(words, per_word=2.0)))
    for i, (facts, headline, dateline, quote) in enumerate(NEWS_FACTS_ZH):
        words = (100, 120, 150)[i % 3]
        fields = {"facts": facts, "headline": headline, "dateline": dateline, "quote": quote, "words": words}
        out.append(task("news-article", "zh", i + 1, {**fields, **zh}, cap(words, per_word=2.0)))
    for i, (destination, duration, interests, budget) in enumerate(DESTINATIONS_ZH):
        words = (150, 200)[i % 2]
        fields = {"destination": destination, "duration": duration, "interests": interests, "budget": budget}
        out.append(task("travel-guide", "zh", i + 1, {**fields, "words": words, **zh}, cap(words, per_word=2.0)))
    for i, (topic, level, text) in enumerate(QUIZZES_ZH):
        questions, options = 2 + i % 2, (4, 3)[i % 2]
        fields = {"topic": topic, "level": level, "num_questions": questions, "num_options": options, "text": text}
        out.append(task("lesson-quiz", "zh", i + 1, {**fields, **zh}, 130 * questions + 40))
    for i, (text, mode) in enumerate(REWRITES_ZH):
        size = len(text) * (3 if mode == "expand" else 1.6)
        out.append(task("rewrite", "zh", i + 1, {"text": text, "mode": mode, **zh}, cap(size, per_word=1.5)))
    for i, text in enumerate(TRANSLATE_TO_ZH):  # English into Chinese: about two characters a word
        fields = {"text": text, "mode": "translate", **zh}
        out.append(task("rewrite", "zh", len(REWRITES_ZH) + i + 1, fields, cap(len(text.split()) * 3, per_word=1.5)))
    for i, text in enumerate(TRANSLATE_TO_EN):  # Chinese into English
        fields = {"text": text, "mode": "translate", "language": "en"}
        out.append(task("rewrite", "en", len(REWRITES) + i + 1, fields, cap(len(text), per_word=1.6)))
    return out


def shared_caps(rows: list[dict]) -> list[dict]:
    """Each template and language gets the largest cap any of its tasks needs: tasks with the same settings decode
    in one batch, and on a CPU a wider batch costs little more than a narrow one."""
    largest: dict[tuple, int] = {}
    for row in rows:
        key = (row["template"], row["fields"].get("language", "en"))
        largest[key] = max(largest.get(key, 0), row["settings"]["max_new_tokens"])
    for row in rows:
        row["settings"]["max_new_tokens"] = largest[(row["template"], row["fields"].get("language", "en"))]
    return rows


def render() -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in shared_caps(tasks()))


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {render().count(chr(10))} tasks to {OUT}")


if __name__ == "__main__":
    main()
