"""Texts for the demo summarization project, written for Text2Grad Studio (short, factual, self-contained)."""

SUMMARY_INSTRUCTION = (
    "Summarize the following text in one or two sentences. Keep names, numbers and dates.\n\n"
)

SUMMARY_TEXTS = [
    "The town council of Millbrook voted 7 to 2 on Tuesday to convert the old railway depot into a public "
    "library. Construction will begin in March and is expected to cost 4.2 million dollars, most of it "
    "covered by a state grant. Mayor Elena Ruiz said the library would open in the autumn of next year.",
    "Researchers at the Northfield Marine Institute tagged 48 loggerhead turtles off the coast last summer. "
    "The tracking data showed that the turtles travelled an average of 1,900 kilometres before returning to "
    "their nesting beaches, far more than the team had predicted.",
    "A water main burst under Kings Road early on Saturday, flooding three shops and closing the street for "
    "most of the day. Engineers from the city water company repaired the pipe by 6 pm. No one was hurt, but "
    "about 300 homes had low water pressure until the evening.",
    "The Riverside Orchestra will perform Beethoven's Ninth Symphony on 14 June to celebrate its 50th "
    "anniversary. Conductor Samuel Okafor has invited former members to join the choir, and tickets go on sale "
    "next Monday at the concert hall box office.",
    "After two years of testing, the farming cooperative Green Valley switched all of its 120 tractors to "
    "biodiesel made from used cooking oil. The cooperative says fuel costs fell by 11 percent and that engine "
    "maintenance did not increase.",
    "The city's bike-sharing scheme recorded 2.3 million rides last year, up from 1.6 million the year before. "
    "Officials credit the 40 new docking stations opened near train stations and plan another 25 by the end of "
    "this year.",
    "A small bakery in Harlow won first prize at the national bread championship for its rye sourdough. Owner "
    "Priya Nair, who opened the shop in 2019, said the recipe uses a starter she has kept alive for eleven years.",
    "Heavy snow closed the mountain pass between Altdorf and Brenning for four days this week. Road crews "
    "cleared 1.5 metres of snow, and the pass reopened on Friday morning with a speed limit of 40 km/h.",
    "The public hospital in Eastport has opened a new emergency department with 36 beds, double the size of the "
    "old one. Waiting times in the first month fell from an average of five hours to just under three hours.",
    "Students at Lakeside High School built a weather station on the school roof that reports temperature, wind "
    "and rainfall every ten minutes. Their data is now used by the regional forecasting office.",
    "The museum of natural history will close its dinosaur hall for renovation from 1 September until next "
    "spring. The hall's Tyrannosaurus skeleton, nicknamed Rex, will be cleaned and remounted in a new pose.",
    "A survey of 2,000 commuters found that 62 percent would cycle to work if there were safe, separated bike "
    "lanes. Only 9 percent currently cycle, mostly citing heavy traffic as the reason they do not.",
    "Firefighters in Pine County contained a wildfire that burned 850 hectares of forest over three days. "
    "Fifty homes were evacuated as a precaution, and all residents were allowed to return on Sunday.",
    "The chess club of Westbury celebrated its 100th year with a simultaneous exhibition in which grandmaster "
    "Lena Hofmann played 30 members at once. She won 27 games, drew two and lost one to a 12-year-old.",
    "A new ferry linking Port Ellis and the island of Skara began service on Monday. The crossing takes 35 "
    "minutes instead of an hour, and the ferry can carry 60 cars and 400 passengers.",
    "The regional library network lent 1.1 million e-books last year, overtaking printed books for the first "
    "time. Librarians say audiobooks were the fastest-growing category, up 40 percent.",
]
